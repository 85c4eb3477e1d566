print("feerecon")
