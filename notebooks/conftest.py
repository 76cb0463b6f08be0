"""nbval runs these notebooks on kernels over local IPC sockets (as the pipeline does), not TCP."""

import nbval.kernel

from scadf_lib.pipeline import SyncIPCKernelManager

nbval.kernel.KernelManager = SyncIPCKernelManager
