/**
 * JS functions as agent tools. A tool's handler gets the model's arguments
 * and the verified caller; what it returns goes back to the model.
 */
import type { ActionCall, NativeAction, NativeTool, ToolCall } from "../native/index.js";
import { ChatKitError } from "./errors.js";

/** Who calls a tool: the verified user (never taken from the model's arguments). */
export interface ToolContext {
  /** The verified user id. */
  userId: string;
  /** The caller's e-mail, when known. */
  email?: string;
  /** The caller's display name, when known. */
  name?: string;
  /** The model's call id. */
  callId: string;
}

/** A `client_effect` for the page (ChatKit React's `onEffect`). */
export interface ClientEffect {
  /** The effect name, e.g. `"notes_changed"`. */
  name: string;
  /** Its data (an object). */
  data?: Record<string, unknown>;
}

/**
 * What a tool returns when it wants more than a value for the model: a
 * ChatKit widget for the user (a `Card`, `ListView` or `Basic` root) and
 * `client_effect`s for the page. The model sees `output`.
 */
export class ToolResult {
  constructor(
    /** What the model sees (a string as is, anything else as JSON). */
    readonly output: unknown,
    /** A widget root shown after the tool activity. */
    readonly widget?: Record<string, unknown>,
    /** Client effects sent while the answer streams. */
    readonly effects: ClientEffect[] = [],
  ) {}
}

/** A function the agent can call. */
export interface ToolDefinition<Args = Record<string, unknown>> {
  /** The name the model uses (a task tool's name replaces that task tool). */
  name: string;
  /** What the tool does, for the model. */
  description?: string;
  /** JSON schema of the arguments object (default: any object). */
  parameters?: Record<string, unknown>;
  /**
   * Runs the tool. A string result is shown to the model as is; any other
   * value as JSON (`undefined` as an empty text). A throw or rejection is
   * reported to the model as a failed call with the error's message.
   */
  handler: (args: Args, context: ToolContext) => unknown;
  /**
   * Ask the user first: the run pauses on a Confirm / Cancel card and the
   * tool runs only after Confirm (Cancel tells the model the user declined).
   */
  requiresApproval?: boolean;
}

/** The native form of a tool: its handler resolves to a JSON envelope. */
export function toNativeTool(tool: ToolDefinition<any>): NativeTool {
  if (typeof tool?.handler !== "function") {
    throw new TypeError(`tool ${JSON.stringify(tool?.name)} needs a handler function`);
  }
  const parameters = tool.parameters ?? { type: "object", properties: {} };
  return {
    name: tool.name,
    description: tool.description ?? "",
    parameters: JSON.stringify(parameters),
    requiresApproval: tool.requiresApproval ?? false,
    handler: async (call: ToolCall): Promise<string> => {
      try {
        const args = JSON.parse(call.arguments || "{}");
        const context: ToolContext = { userId: call.userId, callId: call.callId };
        if (call.email != null) context.email = call.email;
        if (call.name != null) context.name = call.name;
        let result = await tool.handler(args, context);
        let extra: Record<string, unknown> = {};
        if (result instanceof ToolResult) {
          extra = { widget: result.widget ?? null, effects: result.effects };
          result = result.output;
        }
        if (typeof result === "string") {
          return JSON.stringify({ ok: true, text: result, ...extra });
        }
        if (result === undefined) {
          return JSON.stringify({ ok: true, text: "", ...extra });
        }
        return JSON.stringify({ ok: true, json: result, ...extra });
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        return JSON.stringify({ ok: false, error: message });
      }
    },
  };
}

/** Who sent a widget action: the verified caller. */
export interface ActionContext {
  /** The verified user id. */
  userId: string;
  /** The caller's e-mail, when known. */
  email?: string;
  /** The caller's display name, when known. */
  name?: string;
  /** The caller's locale, when known. */
  locale?: string;
}

/** A widget action as ChatKit sends it (a submitted form adds its fields to `payload`). */
export interface WidgetAction {
  /** The action type, e.g. `"cart.add"`. */
  type: string;
  /** Its payload. */
  payload: unknown;
}

/**
 * What a widget action handler changes on the page: `widget` (a `Card`,
 * `ListView` or `Basic` root) replaces the sender in place and is stored;
 * `effects` are sent as `client_effect` events.
 */
export class ActionResult {
  constructor(
    /** The widget root that replaces the sender (`undefined`: it stays). */
    readonly widget?: Record<string, unknown>,
    /** Client effects for the page. */
    readonly effects: ClientEffect[] = [],
  ) {}
}

/** A handler of widget actions of one type, answered without the model. */
export interface ActionDefinition {
  /** The action type it handles (a built-in type such as `tasks.toggle` replaces that handler). */
  type: string;
  /**
   * Handles one action. The engine has already checked that `widget` (the
   * sender, from the caller's own thread) offers exactly this action.
   * Return an {@link ActionResult} or nothing; throw a {@link ChatKitError}
   * (e.g. `invalid_request`) to refuse with its message. Any other throw is
   * an internal error (logged, not shown).
   */
  handler: (
    action: WidgetAction,
    widget: Record<string, unknown>,
    context: ActionContext,
  ) => ActionResult | undefined | void | Promise<ActionResult | undefined | void>;
}

/** The native form of an action handler: it resolves to a JSON envelope. */
export function toNativeAction(action: ActionDefinition): NativeAction {
  if (typeof action?.handler !== "function") {
    throw new TypeError(`action ${JSON.stringify(action?.type)} needs a handler function`);
  }
  if (typeof action.type !== "string" || action.type === "") {
    throw new TypeError("an action handler needs a type");
  }
  return {
    type: action.type,
    handler: async (call: ActionCall): Promise<string> => {
      const context: ActionContext = { userId: call.userId };
      if (call.email != null) context.email = call.email;
      if (call.name != null) context.name = call.name;
      if (call.locale != null) context.locale = call.locale;
      let result;
      try {
        result = await action.handler(JSON.parse(call.action), JSON.parse(call.widget), context);
      } catch (err) {
        if (err instanceof ChatKitError) {
          return JSON.stringify({ ok: false, code: err.code, error: err.message });
        }
        throw err;
      }
      if (result === undefined) return "null";
      if (!(result instanceof ActionResult)) {
        throw new TypeError(`action handler ${JSON.stringify(action.type)} must return an ActionResult or nothing`);
      }
      return JSON.stringify({ ok: true, widget: result.widget ?? null, effects: result.effects });
    },
  };
}
