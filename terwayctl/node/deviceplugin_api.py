"""kubelet's device-plugin API v1beta1: its protobuf messages, built at run time, and the gRPC names.

Source: kubernetes/kubernetes `staging/src/k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1/api.proto`
(package `v1beta1`; services `Registration` and `DevicePlugin`). Every message, field name, number
and type below is that file's; the gogoproto options there change only Go code, not the wire.

Why built at run time rather than a generated `api_pb2.py`: generated modules pin the protobuf
runtime they were generated for (protobuf 5+ checks the gencode version when imported), while a
`FileDescriptorProto` built here works with every protobuf from 4.25 on and needs no generated
code to keep in step. The service side uses grpc's generic handlers, so no `_pb2_grpc` is needed
either. Only `terwayctl.node` imports this module (an import-linter contract: only node imports
grpc and protobuf), and only on the daemon's code path, never at CLI start-up.
"""

from __future__ import annotations

import functools
from typing import Any

API_VERSION = "v1beta1"
PACKAGE = "v1beta1"
KUBELET_SOCKET = "kubelet.sock"
DEVICE_PLUGIN_PATH = "/var/lib/kubelet/device-plugins"
HEALTHY = "Healthy"
UNHEALTHY = "Unhealthy"
REGISTRATION_SERVICE = f"{PACKAGE}.Registration"
DEVICE_PLUGIN_SERVICE = f"{PACKAGE}.DevicePlugin"

_STRING, _BOOL, _INT32, _INT64, _MESSAGE = "string", "bool", "int32", "int64", "message"

# message -> [(field, number, type, repeated, message type or None)]
_MESSAGES: dict[str, list[tuple[str, int, str, bool, str | None]]] = {
    "DevicePluginOptions": [
        ("pre_start_required", 1, _BOOL, False, None),
        ("get_preferred_allocation_available", 2, _BOOL, False, None),
    ],
    "RegisterRequest": [
        ("version", 1, _STRING, False, None),
        ("endpoint", 2, _STRING, False, None),
        ("resource_name", 3, _STRING, False, None),
        ("options", 4, _MESSAGE, False, "DevicePluginOptions"),
    ],
    "Empty": [],
    "ListAndWatchResponse": [("devices", 1, _MESSAGE, True, "Device")],
    "TopologyInfo": [("nodes", 1, _MESSAGE, True, "NUMANode")],
    "NUMANode": [("ID", 1, _INT64, False, None)],
    "Device": [
        ("ID", 1, _STRING, False, None),
        ("health", 2, _STRING, False, None),
        ("topology", 3, _MESSAGE, False, "TopologyInfo"),
    ],
    "PreStartContainerRequest": [("devices_ids", 1, _STRING, True, None)],
    "PreStartContainerResponse": [],
    "PreferredAllocationRequest": [
        ("container_requests", 1, _MESSAGE, True, "ContainerPreferredAllocationRequest"),
    ],
    "ContainerPreferredAllocationRequest": [
        ("available_deviceIDs", 1, _STRING, True, None),
        ("must_include_deviceIDs", 2, _STRING, True, None),
        ("allocation_size", 3, _INT32, False, None),
    ],
    "PreferredAllocationResponse": [
        ("container_responses", 1, _MESSAGE, True, "ContainerPreferredAllocationResponse"),
    ],
    "ContainerPreferredAllocationResponse": [("deviceIDs", 1, _STRING, True, None)],
    "AllocateRequest": [("container_requests", 1, _MESSAGE, True, "ContainerAllocateRequest")],
    "ContainerAllocateRequest": [("devices_ids", 1, _STRING, True, None)],
    "AllocateResponse": [("container_responses", 1, _MESSAGE, True, "ContainerAllocateResponse")],
    "ContainerAllocateResponse": [
        ("envs", 1, _MESSAGE, True, "ContainerAllocateResponse.EnvsEntry"),
        ("mounts", 2, _MESSAGE, True, "Mount"),
        ("devices", 3, _MESSAGE, True, "DeviceSpec"),
        ("annotations", 4, _MESSAGE, True, "ContainerAllocateResponse.AnnotationsEntry"),
        ("cdi_devices", 5, _MESSAGE, True, "CDIDevice"),
    ],
    "Mount": [
        ("container_path", 1, _STRING, False, None),
        ("host_path", 2, _STRING, False, None),
        ("read_only", 3, _BOOL, False, None),
    ],
    "DeviceSpec": [
        ("container_path", 1, _STRING, False, None),
        ("host_path", 2, _STRING, False, None),
        ("permissions", 3, _STRING, False, None),
    ],
    "CDIDevice": [("name", 1, _STRING, False, None)],
}
# map<string, string> fields: their entry messages, nested in the message that holds them.
_MAP_ENTRIES = {"ContainerAllocateResponse": ("EnvsEntry", "AnnotationsEntry")}

# service -> [(method, request, response, server streaming)]
SERVICES: dict[str, list[tuple[str, str, str, bool]]] = {
    "Registration": [("Register", "RegisterRequest", "Empty", False)],
    "DevicePlugin": [
        ("GetDevicePluginOptions", "Empty", "DevicePluginOptions", False),
        ("ListAndWatch", "Empty", "ListAndWatchResponse", True),
        ("GetPreferredAllocation", "PreferredAllocationRequest", "PreferredAllocationResponse", False),
        ("Allocate", "AllocateRequest", "AllocateResponse", False),
        ("PreStartContainer", "PreStartContainerRequest", "PreStartContainerResponse", False),
    ],
}


@functools.cache
def messages() -> dict[str, Any]:
    """Message name (e.g. ``RegisterRequest``) -> its generated class, built once."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FileDescriptorProto(name="terwayctl/deviceplugin/v1beta1/api.proto", package=PACKAGE,
                                             syntax="proto3")
    types = {
        _STRING: descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        _BOOL: descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
        _INT32: descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
        _INT64: descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
        _MESSAGE: descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
    }
    for name, fields in _MESSAGES.items():
        message = fdp.message_type.add(name=name)
        for field, number, kind, repeated, type_name in fields:
            message.field.add(
                name=field, number=number, type=types[kind],
                label=(descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED if repeated
                       else descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL),
                **({"type_name": f".{PACKAGE}.{type_name}"} if type_name else {}),
            )
        for entry in _MAP_ENTRIES.get(name, ()):
            nested = message.nested_type.add(name=entry)
            nested.options.map_entry = True
            for field, number in (("key", 1), ("value", 2)):
                nested.field.add(name=field, number=number, type=types[_STRING],
                                 label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    for service, methods in SERVICES.items():
        svc = fdp.service.add(name=service)
        for method, request, response, streaming in methods:
            svc.method.add(name=method, input_type=f".{PACKAGE}.{request}", output_type=f".{PACKAGE}.{response}",
                           server_streaming=streaming)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
            for name in _MESSAGES}


def method_path(service: str, method: str) -> str:
    """The gRPC path of a method, e.g. ``/v1beta1.Registration/Register``."""
    return f"/{PACKAGE}.{service}/{method}"
