from cri.shim.loop import BINARY, compile_loop

print(BINARY if BINARY.is_file() else compile_loop())
