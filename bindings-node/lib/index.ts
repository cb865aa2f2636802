/**
 * `chatkit-engine`: a ChatKit backend for Node (the Rust core as a native
 * addon). See {@link ChatEngine}.
 */
export { ChatEngine, type Body, type CreateOptions, type HandleOptions, type NodeHandleOptions, type ProcessOptions, type RequestContext, type UsageReport, type UsageTotals } from "./engine.js";
export { ChatKitResult, SSE_HEADERS } from "./result.js";
export { ChatKitError, type ErrorCode } from "./errors.js";
export { type EngineConfig, type SnakeCaseEngineConfig } from "./config.js";
export {
  type ActionContext,
  type ActionDefinition,
  ActionResult,
  type ClientEffect,
  type ToolContext,
  type ToolDefinition,
  ToolResult,
  type WidgetAction,
} from "./tools.js";
export { coreVersion } from "../native/index.js";
