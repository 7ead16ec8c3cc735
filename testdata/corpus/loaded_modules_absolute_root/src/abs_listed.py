ABS = 1
