"""Pod networking: network namespaces now, CNI plugins later."""

from cri.network.netns import create_netns, remove_netns

__all__ = ["create_netns", "remove_netns"]
