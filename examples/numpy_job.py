# The file the tl;dr example runs in the sandbox: numpy, output on stdout,
# the matrix size from sys.argv.
import sys

import numpy as np

n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
a = np.arange(n * n, dtype=np.int64).reshape(n, n)
print("numpy", np.__version__)
print(a @ a.T)
print("trace:", int(np.trace(a)))
