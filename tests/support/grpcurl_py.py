"""A stand-in for `grpcurl` where the real one is not installed: the subset the README uses, through
server reflection only (no .proto files, no generated code), so the README's commands are checked the
way grpcurl would run them: `-plaintext`, `-H 'name: value'`, `-d JSON`, then `list` or
`package.Service/Method`. Output as grpcurl's: JSON with proto field names; errors as
`ERROR:\\n  Code: ...\\n  Message: ...` on stderr and exit 1.

Run as `python -m tests.support.grpcurl_py ARGS` (the e2e test puts a `grpcurl` shim on PATH).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase


def main(argv: Sequence[str]) -> int:
    headers: list[tuple[str, str]] = []
    data = "{}"
    words: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "-plaintext":
            continue
        if arg == "-H":
            name, _, value = next(args).partition(":")
            headers.append((name.strip().lower(), value.strip()))
        elif arg == "-d":
            data = next(args)
        elif arg.startswith("-"):
            print(f"grpcurl_py: unsupported flag {arg}", file=sys.stderr)
            return 2
        else:
            words.append(arg)
    target, command = words
    with grpc.insecure_channel(target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        if command == "list":
            print("\n".join(sorted(database.get_services())))
            return 0
        return _call(channel, descriptor_pool.DescriptorPool(database), command, data, headers)


def _call(
    channel: grpc.Channel,
    pool: descriptor_pool.DescriptorPool,
    method_path: str,
    data: str,
    headers: list[tuple[str, str]],
) -> int:
    service_name, _, method_name = method_path.partition("/")
    method = pool.FindServiceByName(service_name).FindMethodByName(method_name)
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    request = json_format.Parse(data, request_class())
    call = channel.unary_unary(
        f"/{service_name}/{method_name}",
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )
    try:
        response = call(request, metadata=headers, timeout=10)
    except grpc.RpcError as error:
        code = error.code()  # type: ignore[attr-defined]
        details = error.details()  # type: ignore[attr-defined]
        print(f"ERROR:\n  Code: {code.name.title().replace('_', '')}\n  Message: {details}", file=sys.stderr)
        return 1
    print(json_format.MessageToJson(response, preserving_proto_field_name=True, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
