import CCurl

/// One request on its way through the driver thread: the immutable request, the caller's
/// continuation, and the response as curl delivers it.
///
/// `@unchecked Sendable` because, apart from the constructor and the continuation (written by the
/// submitting task before the start command is enqueued under the engine's mutex, which orders it
/// before the driver's read), every field is read and written only on the driver thread.
final class Transfer: @unchecked Sendable {
    let request: HTTPClientRequest
    let timeoutMilliseconds: Int
    let connectTimeoutMilliseconds: Int
    let maxBodySize: Int
    var continuation: CheckedContinuation<HTTPClientResponse, any Error>?

    var handle: EasyHandle?
    var headerList: UnsafeMutablePointer<curl_slist>?
    var responseHeaders: [HTTPHeaders.Field] = []
    var responseBody: [UInt8] = []
    var bodyTooLarge = false
    var cancelRequested = false
    var isDone = false

    init(request: HTTPClientRequest, timeoutMilliseconds: Int, connectTimeoutMilliseconds: Int, maxBodySize: Int) {
        self.request = request
        self.timeoutMilliseconds = timeoutMilliseconds
        self.connectTimeoutMilliseconds = connectTimeoutMilliseconds
        self.maxBodySize = maxBodySize
    }

    /// Appends body bytes; `false` once the limit would be passed, which makes curl abort.
    func receiveBody(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard responseBody.count + bytes.count <= maxBodySize else {
            bodyTooLarge = true
            return false
        }
        responseBody.append(contentsOf: bytes)
        return true
    }

    /// One header line as curl hands it over: a status line starts a new response (interim 1xx
    /// or redirect), a line starting with white space continues the previous field.
    func receiveHeaderLine(_ line: UnsafeRawBufferPointer) {
        let bytes = line.bindMemory(to: UInt8.self)
        guard !bytes.isEmpty else { return }
        if bytes.starts(with: Self.statusPrefix) {
            responseHeaders.removeAll(keepingCapacity: true)
            return
        }
        if bytes[0] == UInt8(ascii: " ") || bytes[0] == UInt8(ascii: "\t") {
            let more = Self.trimmed(bytes[...])
            if !more.isEmpty, !responseHeaders.isEmpty {
                responseHeaders[responseHeaders.count - 1].value += " " + String(decoding: more, as: UTF8.self)
            }
            return
        }
        guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")) else { return }
        let name = String(decoding: bytes[..<colon], as: UTF8.self)
        let value = String(decoding: Self.trimmed(bytes[(colon + 1)...]), as: UTF8.self)
        responseHeaders.append(HTTPHeaders.Field(name: name, value: value))
        if request.method != .head, HTTPHeaders.namesEqual(name, "content-length"), let length = Int(value),
           length > responseBody.capacity, length <= min(maxBodySize, Self.maxReservation)
        {
            responseBody.reserveCapacity(length)
        }
    }

    private static let statusPrefix = Array("HTTP/".utf8)
    private static let maxReservation = 8 * 1024 * 1024

    private static func trimmed(_ bytes: Slice<UnsafeBufferPointer<UInt8>>) -> Slice<UnsafeBufferPointer<UInt8>> {
        func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0D || c == 0x0A }
        var start = bytes.startIndex
        var end = bytes.endIndex
        while start < end, isSpace(bytes[start]) { start += 1 }
        while end > start, isSpace(bytes[end - 1]) { end -= 1 }
        return bytes[start..<end]
    }
}

/// A curl easy handle and its error buffer, reused across transfers on the driver thread.
final class EasyHandle {
    let easy: UnsafeMutableRawPointer
    let errorBuffer: UnsafeMutablePointer<CChar>

    init?() {
        guard let easy = curl_easy_init() else { return nil }
        self.easy = easy
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
    }

    deinit {
        curl_easy_cleanup(easy)
        errorBuffer.deallocate()
    }

    var errorMessage: String { String(cString: errorBuffer) }
}
