SELECT key, run_id FROM ops.merged_keys WHERE table_name = %s AND key[1] = ANY(%s)
