SELECT count(*) FROM {view}
