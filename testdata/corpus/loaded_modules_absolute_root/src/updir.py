UP = 1
