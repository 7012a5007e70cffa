import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STATUS_UNSPECIFIED: _ClassVar[Status]
    STATUS_COMPLETED: _ClassVar[Status]
    STATUS_FAILED: _ClassVar[Status]
    STATUS_OTHER: _ClassVar[Status]
STATUS_UNSPECIFIED: Status
STATUS_COMPLETED: Status
STATUS_FAILED: Status
STATUS_OTHER: Status

class PersistedState(_message.Message):
    __slots__ = ("partition_key", "app_id", "sequence_id", "position", "state", "status", "created_at", "status_text")
    PARTITION_KEY_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_TEXT_FIELD_NUMBER: _ClassVar[int]
    partition_key: str
    app_id: str
    sequence_id: int
    position: str
    state: bytes
    status: Status
    created_at: _timestamp_pb2.Timestamp
    status_text: str
    def __init__(self, partition_key: _Optional[str] = ..., app_id: _Optional[str] = ..., sequence_id: _Optional[int] = ..., position: _Optional[str] = ..., state: _Optional[bytes] = ..., status: _Optional[_Union[Status, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status_text: _Optional[str] = ...) -> None: ...

class InitializeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InitializeResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class IsInitializedRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class IsInitializedResponse(_message.Message):
    __slots__ = ("initialized",)
    INITIALIZED_FIELD_NUMBER: _ClassVar[int]
    initialized: bool
    def __init__(self, initialized: _Optional[bool] = ...) -> None: ...

class SaveRequest(_message.Message):
    __slots__ = ("partition_key", "app_id", "sequence_id", "position", "state", "status", "status_text")
    PARTITION_KEY_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_TEXT_FIELD_NUMBER: _ClassVar[int]
    partition_key: str
    app_id: str
    sequence_id: int
    position: str
    state: bytes
    status: Status
    status_text: str
    def __init__(self, partition_key: _Optional[str] = ..., app_id: _Optional[str] = ..., sequence_id: _Optional[int] = ..., position: _Optional[str] = ..., state: _Optional[bytes] = ..., status: _Optional[_Union[Status, str]] = ..., status_text: _Optional[str] = ...) -> None: ...

class SaveResponse(_message.Message):
    __slots__ = ("created_at",)
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class LoadRequest(_message.Message):
    __slots__ = ("partition_key", "app_id", "sequence_id")
    PARTITION_KEY_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_ID_FIELD_NUMBER: _ClassVar[int]
    partition_key: str
    app_id: str
    sequence_id: int
    def __init__(self, partition_key: _Optional[str] = ..., app_id: _Optional[str] = ..., sequence_id: _Optional[int] = ...) -> None: ...

class LoadResponse(_message.Message):
    __slots__ = ("persisted_state",)
    PERSISTED_STATE_FIELD_NUMBER: _ClassVar[int]
    persisted_state: PersistedState
    def __init__(self, persisted_state: _Optional[_Union[PersistedState, _Mapping]] = ...) -> None: ...

class ListAppIdsRequest(_message.Message):
    __slots__ = ("partition_key",)
    PARTITION_KEY_FIELD_NUMBER: _ClassVar[int]
    partition_key: str
    def __init__(self, partition_key: _Optional[str] = ...) -> None: ...

class ListAppIdsResponse(_message.Message):
    __slots__ = ("app_ids",)
    APP_IDS_FIELD_NUMBER: _ClassVar[int]
    app_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, app_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class PipelineRequest(_message.Message):
    __slots__ = ("call_id", "save", "load")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    SAVE_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    call_id: int
    save: SaveRequest
    load: LoadRequest
    def __init__(self, call_id: _Optional[int] = ..., save: _Optional[_Union[SaveRequest, _Mapping]] = ..., load: _Optional[_Union[LoadRequest, _Mapping]] = ...) -> None: ...

class PipelineResponse(_message.Message):
    __slots__ = ("call_id", "save", "load", "error")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    SAVE_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    call_id: int
    save: SaveResponse
    load: LoadResponse
    error: CallError
    def __init__(self, call_id: _Optional[int] = ..., save: _Optional[_Union[SaveResponse, _Mapping]] = ..., load: _Optional[_Union[LoadResponse, _Mapping]] = ..., error: _Optional[_Union[CallError, _Mapping]] = ...) -> None: ...

class BatchedPipelineRequest(_message.Message):
    __slots__ = ("calls",)
    CALLS_FIELD_NUMBER: _ClassVar[int]
    calls: _containers.RepeatedCompositeFieldContainer[PipelineRequest]
    def __init__(self, calls: _Optional[_Iterable[_Union[PipelineRequest, _Mapping]]] = ...) -> None: ...

class BatchedPipelineResponse(_message.Message):
    __slots__ = ("answers",)
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    answers: _containers.RepeatedCompositeFieldContainer[PipelineResponse]
    def __init__(self, answers: _Optional[_Iterable[_Union[PipelineResponse, _Mapping]]] = ...) -> None: ...

class CallError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class ListStepsRequest(_message.Message):
    __slots__ = ("partition_key", "app_id", "before_sequence_id", "limit", "include_state")
    PARTITION_KEY_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    BEFORE_SEQUENCE_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_STATE_FIELD_NUMBER: _ClassVar[int]
    partition_key: str
    app_id: str
    before_sequence_id: int
    limit: int
    include_state: bool
    def __init__(self, partition_key: _Optional[str] = ..., app_id: _Optional[str] = ..., before_sequence_id: _Optional[int] = ..., limit: _Optional[int] = ..., include_state: _Optional[bool] = ...) -> None: ...

class ListStepsResponse(_message.Message):
    __slots__ = ("steps",)
    STEPS_FIELD_NUMBER: _ClassVar[int]
    steps: _containers.RepeatedCompositeFieldContainer[PersistedState]
    def __init__(self, steps: _Optional[_Iterable[_Union[PersistedState, _Mapping]]] = ...) -> None: ...

class DeleteAppRequest(_message.Message):
    __slots__ = ("partition_key", "app_id")
    PARTITION_KEY_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    partition_key: str
    app_id: str
    def __init__(self, partition_key: _Optional[str] = ..., app_id: _Optional[str] = ...) -> None: ...

class DeleteAppResponse(_message.Message):
    __slots__ = ("steps_deleted",)
    STEPS_DELETED_FIELD_NUMBER: _ClassVar[int]
    steps_deleted: int
    def __init__(self, steps_deleted: _Optional[int] = ...) -> None: ...

class DeletePartitionRequest(_message.Message):
    __slots__ = ("partition_key",)
    PARTITION_KEY_FIELD_NUMBER: _ClassVar[int]
    partition_key: str
    def __init__(self, partition_key: _Optional[str] = ...) -> None: ...

class DeletePartitionResponse(_message.Message):
    __slots__ = ("steps_deleted", "apps_deleted")
    STEPS_DELETED_FIELD_NUMBER: _ClassVar[int]
    APPS_DELETED_FIELD_NUMBER: _ClassVar[int]
    steps_deleted: int
    apps_deleted: int
    def __init__(self, steps_deleted: _Optional[int] = ..., apps_deleted: _Optional[int] = ...) -> None: ...

class PruneRequest(_message.Message):
    __slots__ = ("partition_key", "app_id", "keep_last", "older_than")
    PARTITION_KEY_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    KEEP_LAST_FIELD_NUMBER: _ClassVar[int]
    OLDER_THAN_FIELD_NUMBER: _ClassVar[int]
    partition_key: str
    app_id: str
    keep_last: int
    older_than: _timestamp_pb2.Timestamp
    def __init__(self, partition_key: _Optional[str] = ..., app_id: _Optional[str] = ..., keep_last: _Optional[int] = ..., older_than: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PruneResponse(_message.Message):
    __slots__ = ("steps_deleted",)
    STEPS_DELETED_FIELD_NUMBER: _ClassVar[int]
    steps_deleted: int
    def __init__(self, steps_deleted: _Optional[int] = ...) -> None: ...
