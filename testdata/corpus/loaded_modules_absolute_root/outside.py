OUT = 1
