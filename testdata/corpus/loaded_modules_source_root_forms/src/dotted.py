DOT = 1
