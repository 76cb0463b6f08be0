"""nbval runs these notebooks on kernels over local IPC sockets (as the pipeline does), not TCP."""

import nbval.kernel

from scadf_lib.pipeline import SyncIPCKernelManager

nbval.kernel.KernelManager = SyncIPCKernelManager

import pytest

from scadf_lib.dataversions import v1_available

#: The notebooks that use the shipped models, trained on data version 1 (data/v1/, restored from git
#: history by `make setup`): in a clone without that history they are skipped, saying why.
NEEDS_DATA_V1 = ("06_routing_inspector.ipynb", "08_localise_tracks.ipynb")


def pytest_collection_modifyitems(config, items):
    if v1_available():
        return
    skip = pytest.mark.skip(reason="data version 1 is not here (a clone without git history?): "
                                   "`python -m scadf_lib.dataversions restore 1`")
    for item in items:
        if item.path.name in NEEDS_DATA_V1:
            item.add_marker(skip)
