export { Queue } from "./queue";
export type { QueueOptions, ScheduleOptions, ListOptions, Stats, CallOptions, ResultOptions } from "./queue";
export { Worker } from "./worker";
export type { WorkerOptions, Handler } from "./worker";
export { Job } from "./job";
export { OnceUnsupportedError, PermanentError, Result, encodeValue } from "./protocol";
export type { Payload, PushOptions, JobInfo, JobState, ScheduleInfo, Decode } from "./protocol";
export type { Connection, ConnectionOption } from "./connection";
