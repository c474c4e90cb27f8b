"""Connection to Ray: a local cluster by default, an existing one via ``address=`` or ``RAY_ADDRESS``."""

from workbench.runtime._ray import RayConnection, connect, free_port

__all__ = ["RayConnection", "connect", "free_port"]
