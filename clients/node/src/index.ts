export { Queue } from "./queue";
export { FlowError } from "./queue";
export type {
  QueueOptions, ScheduleOptions, ListOptions, Stats, CallOptions, ResultOptions, FlowJob, FlowNode,
} from "./queue";
export { Worker } from "./worker";
export type { WorkerOptions, Handler } from "./worker";
export { Job } from "./job";
export { Dep, OnceUnsupportedError, PermanentError, Result, encodeValue } from "./protocol";
export type {
  Payload, PushOptions, JobInfo, JobState, ScheduleInfo, Decode, DepRef, DepsOptions, OnFail,
} from "./protocol";
export type { Connection, ConnectionOption } from "./connection";
