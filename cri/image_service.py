"""ImageService over gRPC: proto in, domain call, proto out."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
from google.protobuf.message import Message

from cri.api.runtime.v1 import api_pb2 as v1
from cri.errors import InvalidArgument
from cri.image import Image, ImageService, RegistryAuth
from cri.server.pages import pages


def _auth(auth: v1.AuthConfig) -> RegistryAuth | None:
    if not (auth.username or auth.password or auth.auth or auth.identity_token
            or auth.registry_token):
        return None
    return RegistryAuth(username=auth.username, password=auth.password, auth=auth.auth,
                        identity_token=auth.identity_token, registry_token=auth.registry_token)


def image_proto(image: Image) -> v1.Image:
    proto = v1.Image(id=image.id, repo_tags=image.repo_tags, repo_digests=image.repo_digests,
                     size=image.size, pinned=image.pinned, spec=v1.ImageSpec(image=image.id))
    user = image.config.user.partition(":")[0]
    if user.isdigit():
        proto.uid.value = int(user)
    elif user:
        proto.username = user
    return proto


class ImageServicer:
    def __init__(self, images: ImageService, image_dir: Path) -> None:
        self._images = images
        self._image_dir = image_dir

    def ListImages(self, request: v1.ListImagesRequest) -> v1.ListImagesResponse:
        ref = request.filter.image.image or None
        return v1.ListImagesResponse(images=[image_proto(i) for i in self._images.list(ref)])

    def StreamImages(self, request: v1.StreamImagesRequest,
                     context: grpc.ServicerContext) -> Iterator[Message]:
        ref = request.filter.image.image or None
        return pages((image_proto(i) for i in self._images.list(ref)), v1.StreamImagesResponse,
                     "images")

    def ImageStatus(self, request: v1.ImageStatusRequest) -> v1.ImageStatusResponse:
        if not request.image.image:
            raise InvalidArgument("image status needs an image reference")
        image = self._images.get(request.image.image)
        if image is None:
            return v1.ImageStatusResponse()
        response = v1.ImageStatusResponse(image=image_proto(image))
        if request.verbose:
            response.info["info"] = json.dumps({
                "chainIDs": list(image.chain_ids),
                "config": {"User": image.config.user, "Env": list(image.config.env),
                           "Entrypoint": list(image.config.entrypoint),
                           "Cmd": list(image.config.cmd),
                           "WorkingDir": image.config.working_dir},
            })
        return response

    def PullImage(self, request: v1.PullImageRequest) -> v1.PullImageResponse:
        if not request.image.image:
            raise InvalidArgument("pull needs an image reference")
        image = self._images.pull(request.image.image, _auth(request.auth))
        return v1.PullImageResponse(image_ref=image.id)

    def RemoveImage(self, request: v1.RemoveImageRequest) -> v1.RemoveImageResponse:
        if not request.image.image:
            raise InvalidArgument("remove needs an image reference")
        self._images.remove(request.image.image)
        return v1.RemoveImageResponse()

    def ImageFsInfo(self, request: v1.ImageFsInfoRequest) -> v1.ImageFsInfoResponse:
        used, inodes = self._images.fs_usage()
        usage = v1.FilesystemUsage(
            timestamp=time.time_ns(),
            fs_id=v1.FilesystemIdentifier(mountpoint=str(self._image_dir)),
        )
        usage.used_bytes.value = used
        usage.inodes_used.value = inodes
        return v1.ImageFsInfoResponse(image_filesystems=[usage])
