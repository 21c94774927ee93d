import safeeval as PythonSafeEval
from pathlib import Path

sf = PythonSafeEval.SafeEval(version="3.11", modules=["numpy"])
print(sf.eval(code='print("Hello World")').stdout)
print(sf.execute_file(filename=Path(__file__).parent / "test_numpy.py").stdout)
