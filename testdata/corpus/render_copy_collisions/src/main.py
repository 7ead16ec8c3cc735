print("from copy")
