// The generated Kotlin (uniffi, JNA) against the real engine on the JVM: a
// full turn on SQLite with the offline model, a cancel mid-stream that keeps
// the partial answer, a cancelled coroutine, a host tool, JWT authentication
// and error codes. The same checks as tests/python/test_uniffi.py.
//
// A plain program (no test framework): each test runs in runBlocking with a
// timeout and the run ends with `N passed, N failed` (exit 1 on failure).
package chatkit.engine.test

import chatkit.engine.ChatEngine
import chatkit.engine.ChatKitException
import chatkit.engine.EngineConfig
import chatkit.engine.HostTool
import chatkit.engine.ProcessResult
import chatkit.engine.RequestContext
import chatkit.engine.ResponseStream
import chatkit.engine.ToolCall
import chatkit.engine.ToolException
import chatkit.engine.ToolResult
import java.nio.file.Files
import java.util.Base64
import javax.crypto.Mac
import javax.crypto.spec.SecretKeySpec
import kotlin.system.exitProcess
import kotlinx.coroutines.TimeoutCancellationException
import kotlinx.coroutines.async
import kotlinx.coroutines.delay
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout

const val JWT_SECRET = "uniffi-test-secret-that-is-long-enough"

// The offline model's whole answer to "hello".
const val HELP_TEXT =
    "I can add, list, update, complete and delete your tasks, and show your stats. Try \"add a task to buy milk\"."

// ------------------------------------------------------------------ a tiny JSON reader

/** Parses JSON text into Map / List / String / Double / Boolean / null. */
class Json(private val s: String) {
    private var i = 0

    companion object {
        fun parse(text: String): Any? = Json(text).run { value().also { space(); check(i == s.length) { "trailing data" } } }
    }

    private fun space() { while (i < s.length && s[i].isWhitespace()) i++ }

    private fun value(): Any? {
        space()
        return when (val c = s[i]) {
            '{' -> obj()
            '[' -> arr()
            '"' -> str()
            't' -> { i += 4; true }
            'f' -> { i += 5; false }
            'n' -> { i += 4; null }
            else -> if (c == '-' || c.isDigit()) num() else error("unexpected '$c' at $i")
        }
    }

    private fun obj(): Map<String, Any?> {
        val out = LinkedHashMap<String, Any?>()
        i++; space()
        if (s[i] == '}') { i++; return out }
        while (true) {
            space(); val key = str(); space(); check(s[i++] == ':')
            out[key] = value(); space()
            if (s[i++] == '}') return out
        }
    }

    private fun arr(): List<Any?> {
        val out = ArrayList<Any?>()
        i++; space()
        if (s[i] == ']') { i++; return out }
        while (true) {
            out.add(value()); space()
            if (s[i++] == ']') return out
        }
    }

    private fun str(): String {
        check(s[i++] == '"')
        val out = StringBuilder()
        while (true) {
            when (val c = s[i++]) {
                '"' -> return out.toString()
                '\\' -> when (val e = s[i++]) {
                    'n' -> out.append('\n'); 't' -> out.append('\t'); 'r' -> out.append('\r')
                    'b' -> out.append('\b'); 'f' -> out.append('\u000C')
                    'u' -> { out.append(s.substring(i, i + 4).toInt(16).toChar()); i += 4 }
                    else -> out.append(e)
                }
                else -> out.append(c)
            }
        }
    }

    private fun num(): Double {
        val start = i
        while (i < s.length && (s[i].isDigit() || s[i] in "+-.eE")) i++
        return s.substring(start, i).toDouble()
    }
}

@Suppress("UNCHECKED_CAST")
fun Any?.obj(): Map<String, Any?> = this as Map<String, Any?>

@Suppress("UNCHECKED_CAST")
fun Any?.list(): List<Any?> = this as List<Any?>

// ------------------------------------------------------------------ helpers

fun sqliteUrl(): String = "sqlite://${Files.createTempDirectory("chatkit-uniffi-kt-").resolve("chatkit.db")}"

fun jsonString(text: String): String =
    "\"" + text.replace("\\", "\\\\").replace("\"", "\\\"") + "\""

fun createThread(text: String): ByteArray =
    ("""{"type":"threads.create","params":{"input":{"content":[{"type":"input_text","text":${jsonString(text)}}],""" +
        """"attachments":[],"inference_options":{}}}}""").toByteArray()

fun listItems(threadId: String): ByteArray =
    """{"type":"items.list","params":{"thread_id":"$threadId","order":"asc","limit":100}}""".toByteArray()

fun parseSse(data: ByteArray): List<Map<String, Any?>> =
    String(data).split("\n\n").filter { it.startsWith("data: ") }.map { Json.parse(it.removePrefix("data: ")).obj() }

fun textDeltas(events: List<Map<String, Any?>>): String =
    events.filter { it["type"] == "thread.item.updated" }
        .map { it["update"].obj() }
        .filter { it["type"] == "assistant_message.content_part.text_delta" }
        .joinToString("") { it["delta"] as String }

fun assistantTexts(items: Any?): List<String> =
    items.obj()["data"].list().map { it.obj() }.filter { it["type"] == "assistant_message" }
        .map { item -> item["content"].list().joinToString("") { (it.obj()["text"] ?: "") as String } }

fun hs256(claims: String): String {
    val b64 = Base64.getUrlEncoder().withoutPadding()
    val input = b64.encodeToString("""{"alg":"HS256","typ":"JWT"}""".toByteArray()) + "." +
        b64.encodeToString(claims.toByteArray())
    val mac = Mac.getInstance("HmacSHA256").apply { init(SecretKeySpec(JWT_SECRET.toByteArray(), "HmacSHA256")) }
    return input + "." + b64.encodeToString(mac.doFinal(input.toByteArray()))
}

fun streamOf(result: ProcessResult): ResponseStream =
    (result as? ProcessResult.Stream)?.stream ?: error("expected a stream, got $result")

suspend fun jsonOf(engine: ChatEngine, body: ByteArray, ctx: RequestContext): Any? {
    val result = engine.process(body, ctx)
    val json = (result as? ProcessResult.Json)?.body ?: error("expected JSON, got $result")
    return Json.parse(String(json))
}

suspend fun readAll(stream: ResponseStream): ByteArray {
    var out = ByteArray(0)
    while (true) out += stream.next() ?: return out
}

/** Reads frames until the answer has `words` words; returns the thread id. */
suspend fun readUntilWords(stream: ResponseStream, words: Int): String {
    var received = ByteArray(0)
    while (textDeltas(parseSse(received)).count { it == ' ' } < words) {
        received += stream.next() ?: error("the stream ended too early")
    }
    return parseSse(received)[0]["thread"].obj()["id"] as String
}

/** Waits (up to 20 s) until no turn runs: a cancelled turn saves its partial text first. */
suspend fun settled(engine: ChatEngine) {
    val deadline = System.nanoTime() + 20_000_000_000L
    while (engine.runningTurns() > 0u && System.nanoTime() < deadline) delay(50)
    check(engine.runningTurns() == 0u) { "the cancelled turn did not stop" }
}

inline fun <reified E : ChatKitException> expectError(code: String, status: Int, call: () -> Unit) {
    try {
        call()
    } catch (err: ChatKitException) {
        check(err is E) { "${err::class.simpleName} is not ${E::class.simpleName}: ${err.message}" }
        val (gotCode, gotStatus, body) = Triple(err.errorCode(), err.errorHttpStatus(), err.errorJsonBody())
        if (err is ChatKitException.Unauthorized) {
            check(err.code == gotCode && err.httpStatus == gotStatus && err.jsonBody == body && err.reason.isNotEmpty())
        }
        check(gotCode == code && gotStatus.toInt() == status) { "got $gotCode/$gotStatus, want $code/$status" }
        check(Json.parse(body).obj()["error"].obj()["code"] == code) { body }
        return
    }
    error("expected ${E::class.simpleName} ($code)")
}

class ListTasks : HostTool {
    val calls = mutableListOf<ToolCall>()

    override fun name() = "list_tasks"

    override fun description() = "The user's tasks"

    override fun parametersJson() = """{"type":"object","properties":{"status":{"type":"string"}}}"""

    override suspend fun call(call: ToolCall): ToolResult {
        calls.add(call)
        delay(10) // a real suspension on the host's side
        return ToolResult.Json(
            """{"success":true,"data":[{"id":"t-1","title":"water the host plants","completed":false,"priority":"medium"}]}""",
        )
    }
}

// ------------------------------------------------------------------ tests

suspend fun aFullTurnStreamsSseFramesAndIsPersisted() {
    val engine = ChatEngine(EngineConfig(databaseUrl = sqliteUrl()))
    val ctx = RequestContext(userId = "alice", email = "alice@example.com")
    val stream = streamOf(engine.process(createThread("add task buy milk"), ctx))
    val frames = mutableListOf<ByteArray>()
    while (true) frames.add(stream.next() ?: break)
    check(frames.all { String(it).startsWith("data: ") && String(it).endsWith("\n\n") })
    val events = parseSse(frames.fold(ByteArray(0)) { acc, f -> acc + f })
    check(events[0]["type"] == "thread.created")
    check("buy milk" in textDeltas(events).lowercase()) { textDeltas(events) }
    check(stream.next() == null) { "null at the end, and ever after" }
    check(engine.modelName() == "scripted-offline")

    val threadId = events[0]["thread"].obj()["id"] as String
    val items = jsonOf(engine, listItems(threadId), ctx)
    check(items.obj()["data"].list().first().obj()["type"] == "user_message")
    check("buy milk" in assistantTexts(items).joinToString(" ").lowercase())

    val tasks = Json.parse(engine.runTaskTool("list_tasks", "{}", ctx)).obj()
    check(tasks["success"] == true)
    check(tasks["data"].list().map { (it.obj()["title"] as String).lowercase() } == listOf("buy milk"))
    val other = Json.parse(engine.runTaskTool("list_tasks", "{}", RequestContext(userId = "bob"))).obj()
    check(other["data"].list().isEmpty())
}

suspend fun cancelMidStreamStopsTheTurnAndKeepsThePartialAnswer() = coroutineTest {
    // The paced offline model streams its 20-word help text one word per 100 ms.
    val engine = ChatEngine(EngineConfig(databaseUrl = sqliteUrl(), devTokenDelayMs = 100UL))
    val ctx = RequestContext(userId = "alice")
    val stream = streamOf(engine.process(createThread("hello"), ctx))
    val threadId = readUntilWords(stream, 3)
    val pending = async { stream.next() }
    delay(10)
    stream.cancel()
    stream.cancel() // idempotent
    check(withTimeout(5_000) { pending.await() } == null) { "a pending next() returns null on cancel" }
    check(stream.next() == null && stream.isCancelled())
    settled(engine)
    val texts = assistantTexts(jsonOf(engine, listItems(threadId), ctx))
    check(texts.size == 1 && texts[0].startsWith("I can add") && texts[0] != HELP_TEXT && "buy milk" !in texts[0]) {
        texts.toString()
    }
}

suspend fun cancellingTheCoroutineOfAPendingNextCancelsTheTurn() {
    val engine = ChatEngine(EngineConfig(databaseUrl = sqliteUrl(), devTokenDelayMs = 100UL))
    val ctx = RequestContext(userId = "alice")
    val stream = streamOf(engine.process(createThread("hello"), ctx))
    val threadId = readUntilWords(stream, 2)
    // A handler whose client went away: its coroutine is cancelled mid-next().
    try {
        while (true) withTimeout(20) { stream.next() }
    } catch (_: TimeoutCancellationException) {
    }
    check(stream.next() == null)
    settled(engine)
    val texts = assistantTexts(jsonOf(engine, listItems(threadId), ctx))
    check(texts.size == 1 && texts[0].startsWith("I can") && texts[0] != HELP_TEXT) { texts.toString() }
}

suspend fun closingTheStreamObjectCancelsTheTurn() {
    val engine = ChatEngine(EngineConfig(databaseUrl = sqliteUrl(), devTokenDelayMs = 100UL))
    val ctx = RequestContext(userId = "alice")
    val threadId = streamOf(engine.process(createThread("hello"), ctx)).use { readUntilWords(it, 2) }
    settled(engine)
    val texts = assistantTexts(jsonOf(engine, listItems(threadId), ctx))
    check(texts.size == 1 && texts[0].startsWith("I can") && texts[0] != HELP_TEXT) { texts.toString() }
}

suspend fun engineWorkDoesNotBlockTheCallersThread() = coroutineTest {
    // runBlocking runs every coroutine of a test on one thread: if a call
    // blocked it, the ticker could not tick while paced turns run.
    val engine = ChatEngine(EngineConfig(databaseUrl = sqliteUrl(), devTokenDelayMs = 50UL))
    engine.start()
    var ticks = 0
    val ticker = launch { while (true) { delay(5); ticks++ } }
    val ctx = RequestContext(userId = "alice")
    val outputs = (0 until 5).map { i -> async { readAll(streamOf(engine.process(createThread("add task t$i"), ctx))) } }
        .map { it.await() }
    ticker.cancel()
    check(outputs.all { "thread.created" in String(it) })
    check(ticks >= 5) { "the caller's thread ticked only $ticks times during 5 turns" }
}

suspend fun aHostToolReplacesATaskToolAndGetsTheVerifiedUser() {
    val tool = ListTasks()
    val engine = ChatEngine(EngineConfig(databaseUrl = sqliteUrl()), listOf(tool))
    val stream = streamOf(engine.process(createThread("show my tasks"), RequestContext(userId = "carol")))
    val text = textDeltas(parseSse(readAll(stream)))
    check(tool.calls.map { it.userId } == listOf("carol")) { tool.calls.toString() }
    check(Json.parse(tool.calls[0].argumentsJson) is Map<*, *>)
    check("water the host plants" in text) { text }
}

class BrokenStats : HostTool {
    override fun name() = "get_stats"

    override fun description() = "Task statistics"

    override fun parametersJson() = """{"type":"object","properties":{}}"""

    override suspend fun call(call: ToolCall): ToolResult = throw ToolException.Failed("the stats service is down")
}

suspend fun aFailingHostToolIsReportedToTheModelAndTheTurnCompletes() {
    val engine = ChatEngine(EngineConfig(databaseUrl = sqliteUrl()), listOf(BrokenStats()))
    val stream = streamOf(engine.process(createThread("how many tasks do I have?"), RequestContext(userId = "fay")))
    val events = parseSse(readAll(stream))
    check("Sorry, I couldn't do that" in textDeltas(events)) { textDeltas(events) }
    check(events.none { it["type"] == "error" }) { "a tool failure is not a stream error" }
}

suspend fun authenticateVerifiesBearerTokensWithTheConfiguredSecret() {
    val engine = ChatEngine.fromJson("""{"database_url":${jsonString(sqliteUrl())},"jwt_secret":"$JWT_SECRET"}""")
    val now = System.currentTimeMillis() / 1000
    val token = hs256("""{"sub":"dave","email":"dave@example.com","iat":$now,"exp":${now + 3600}}""")
    val ctx = engine.authenticate("Bearer $token")
    check(ctx.userId == "dave" && ctx.email == "dave@example.com") { ctx.toString() }
    val expired = hs256("""{"sub":"dave","iat":${now - 7200},"exp":${now - 3600}}""")
    expectErrorSuspend<ChatKitException.Unauthorized>("token_expired", 401) { engine.authenticate("Bearer $expired") }
    expectErrorSuspend<ChatKitException.Unauthorized>("unauthorized", 401) { engine.authenticate(null) }
}

suspend fun errorsCarryTheStableCodeAndHttpStatus() {
    val engine = ChatEngine(EngineConfig(databaseUrl = sqliteUrl()))
    val ctx = RequestContext(userId = "erin")
    expectErrorSuspend<ChatKitException.InvalidRequest>("invalid_request", 400) {
        engine.process("{not json".toByteArray(), ctx)
    }
    expectErrorSuspend<ChatKitException.NotFound>("not_found", 404) { engine.process(listItems("thr_missing"), ctx) }
    expectErrorSuspend<ChatKitException.InvalidRequest>("invalid_request", 400) {
        engine.runTaskTool("list_tasks", "[", ctx)
    }
    expectError<ChatKitException.InvalidConfig>("invalid_config", 500) {
        ChatEngine(EngineConfig(databaseUrl = "mysql://nope"))
    }
    expectError<ChatKitException.InvalidConfig>("invalid_config", 500) {
        ChatEngine.fromJson("""{"database_url":"sqlite://x.db","no_such_key":1}""")
    }
    expectError<ChatKitException.InvalidConfig>("invalid_config", 500) {
        ChatEngine(EngineConfig(databaseUrl = "sqlite://x.db", extraJson = """{"max_turns":0}"""))
    }
}

suspend inline fun <reified E : ChatKitException> expectErrorSuspend(code: String, status: Int, call: () -> Unit) =
    expectError<E>(code, status, call)

/** Runs `block` in a fresh coroutine scope (for tests that start child coroutines). */
suspend fun coroutineTest(block: suspend kotlinx.coroutines.CoroutineScope.() -> Unit) =
    kotlinx.coroutines.coroutineScope { block() }

// ------------------------------------------------------------------ runner

fun main() {
    val tests: List<Pair<String, suspend () -> Unit>> = listOf(
        "a full turn streams SSE frames and is persisted" to ::aFullTurnStreamsSseFramesAndIsPersisted,
        "cancel mid-stream stops the turn and keeps the partial answer" to
            ::cancelMidStreamStopsTheTurnAndKeepsThePartialAnswer,
        "cancelling the coroutine of a pending next() cancels the turn" to
            ::cancellingTheCoroutineOfAPendingNextCancelsTheTurn,
        "closing the stream object (use {}) cancels the turn" to ::closingTheStreamObjectCancelsTheTurn,
        "engine work does not block the caller's thread" to ::engineWorkDoesNotBlockTheCallersThread,
        "a host tool replaces a task tool and gets the verified user" to
            ::aHostToolReplacesATaskToolAndGetsTheVerifiedUser,
        "a failing host tool is reported to the model and the turn completes" to
            ::aFailingHostToolIsReportedToTheModelAndTheTurnCompletes,
        "authenticate verifies Bearer tokens with the configured secret" to
            ::authenticateVerifiesBearerTokensWithTheConfiguredSecret,
        "errors carry the stable code and HTTP status" to ::errorsCarryTheStableCodeAndHttpStatus,
    )
    var passed = 0
    var failed = 0
    for ((name, test) in tests) {
        val started = System.nanoTime()
        try {
            runBlocking { withTimeout(60_000) { test() } }
            passed++
            println("ok   $name (%.2fs)".format((System.nanoTime() - started) / 1e9))
        } catch (err: Throwable) {
            failed++
            println("FAIL $name")
            err.printStackTrace(System.out)
        }
    }
    println("$passed passed, $failed failed")
    exitProcess(if (failed > 0 || passed == 0) 1 else 0)
}
