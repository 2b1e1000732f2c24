VACUUM (ANALYZE) {relation}
