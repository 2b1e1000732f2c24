SELECT indexname FROM pg_indexes WHERE schemaname = 'public'
