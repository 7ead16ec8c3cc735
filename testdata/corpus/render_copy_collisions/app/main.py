print("from source_root")
