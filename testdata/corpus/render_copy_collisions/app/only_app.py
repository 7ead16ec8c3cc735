print("only app")
