from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from aclip._pb import docarray_pb2 as _docarray_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StatusProto(_message.Message):
    __slots__ = ("code", "description", "exception")
    class StatusCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        SUCCESS: _ClassVar[StatusProto.StatusCode]
        ERROR: _ClassVar[StatusProto.StatusCode]
    SUCCESS: StatusProto.StatusCode
    ERROR: StatusProto.StatusCode
    class ExceptionProto(_message.Message):
        __slots__ = ("name", "args", "stacks", "executor")
        NAME_FIELD_NUMBER: _ClassVar[int]
        ARGS_FIELD_NUMBER: _ClassVar[int]
        STACKS_FIELD_NUMBER: _ClassVar[int]
        EXECUTOR_FIELD_NUMBER: _ClassVar[int]
        name: str
        args: _containers.RepeatedScalarFieldContainer[str]
        stacks: _containers.RepeatedScalarFieldContainer[str]
        executor: str
        def __init__(self, name: _Optional[str] = ..., args: _Optional[_Iterable[str]] = ..., stacks: _Optional[_Iterable[str]] = ..., executor: _Optional[str] = ...) -> None: ...
    CODE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    EXCEPTION_FIELD_NUMBER: _ClassVar[int]
    code: StatusProto.StatusCode
    description: str
    exception: StatusProto.ExceptionProto
    def __init__(self, code: _Optional[_Union[StatusProto.StatusCode, str]] = ..., description: _Optional[str] = ..., exception: _Optional[_Union[StatusProto.ExceptionProto, _Mapping]] = ...) -> None: ...

class RouteProto(_message.Message):
    __slots__ = ("executor", "start_time", "end_time", "status")
    EXECUTOR_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    executor: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    status: StatusProto
    def __init__(self, executor: _Optional[str] = ..., start_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[StatusProto, _Mapping]] = ...) -> None: ...

class HeaderProto(_message.Message):
    __slots__ = ("request_id", "status", "exec_endpoint", "target_executor", "timeout")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXEC_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    TARGET_EXECUTOR_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    status: StatusProto
    exec_endpoint: str
    target_executor: str
    timeout: int
    def __init__(self, request_id: _Optional[str] = ..., status: _Optional[_Union[StatusProto, _Mapping]] = ..., exec_endpoint: _Optional[str] = ..., target_executor: _Optional[str] = ..., timeout: _Optional[int] = ...) -> None: ...

class DataRequestProto(_message.Message):
    __slots__ = ("header", "parameters", "routes", "data")
    class DataContentProto(_message.Message):
        __slots__ = ("docs", "docs_bytes")
        DOCS_FIELD_NUMBER: _ClassVar[int]
        DOCS_BYTES_FIELD_NUMBER: _ClassVar[int]
        docs: _docarray_pb2.DocumentArrayProto
        docs_bytes: bytes
        def __init__(self, docs: _Optional[_Union[_docarray_pb2.DocumentArrayProto, _Mapping]] = ..., docs_bytes: _Optional[bytes] = ...) -> None: ...
    HEADER_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: HeaderProto
    parameters: _struct_pb2.Struct
    routes: _containers.RepeatedCompositeFieldContainer[RouteProto]
    data: DataRequestProto.DataContentProto
    def __init__(self, header: _Optional[_Union[HeaderProto, _Mapping]] = ..., parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., routes: _Optional[_Iterable[_Union[RouteProto, _Mapping]]] = ..., data: _Optional[_Union[DataRequestProto.DataContentProto, _Mapping]] = ...) -> None: ...
