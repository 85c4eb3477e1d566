/// One fee line of a receipt (`ThongTinBienLai.PhiLePhi[]`).
struct FeeLine: Sendable, Equatable {
    /// `1` phí (fee) or `2` lệ phí (charge).
    var kind: String
    var code: String
    var name: String
    var amount: Int64
}

/// A validated §1 create request.
struct CreateRequest: Sendable, Equatable {
    var partner: String
    var reference: String
    var amount: Int64
    var currency: String
    var requestedAt: Int64
    var expiresAt: Int64?
    var description: String
    var returnURL: String
    var notifyURL: String
    var dossierCode: String
    var procedureCode: String
    var procedureName: String
    var agencyCode: String
    var agencyName: String
    var payerName: String
    var lines: [FeeLine]
    /// The body's canonical JSON, compared for idempotency.
    var canonical: String

    /// Sum of the `1` (phí) lines.
    var feeAmount: Int64 { lines.filter { $0.kind == "1" }.reduce(0) { $0 + $1.amount } }
    /// Sum of the `2` (lệ phí) lines.
    var chargeAmount: Int64 { lines.filter { $0.kind == "2" }.reduce(0) { $0 + $1.amount } }
}

/// A validated §4 query.
struct QueryRequest: Sendable, Equatable {
    var partner: String
    var reference: String
    var requestedAt: Int64
}

/// A validated §5 refund request.
struct RefundRequest: Sendable, Equatable {
    var partner: String
    var requestID: String
    var reference: String
    var transactionID: String
    /// `02` full or `03` partial.
    var kind: String
    var amount: Int64
    var officer: String
    var reason: String
    var requestedAt: Int64
    var canonical: String
}

/// Field limits of PROTOCOL.md.
enum WireLimits {
    static let maxAmount: Int64 = 1_000_000_000_000
    static let maxDescription = 255
    static let maxName = 200
    static let maxFeeLines = 50
    static let maxReference = 20
    static let maxRequestID = 32
    static let maxURL = 2048
    static let maxCode = 50
}

enum WireParser {
    /// Parses and validates a create body; `partner` is the verified `x-partner-code`.
    static func create(_ body: [UInt8], partner: String) throws(ProtocolRejection) -> CreateRequest {
        let (root, object) = try envelope(body, partner: partner, messageType: "KHOITAO")
        let f = Fields(object)
        guard try f.string("PhienBan") == "1.0" else { throw .malformed("PhienBan") }
        let reference = try f.reference("MaThamChieu")
        let amount = try f.amount("SoTien")
        guard try f.string("MaTienTe") == "VND" else { throw .malformed("MaTienTe") }
        if let language = try f.optionalString("NgonNgu"), language != "vi", language != "en" {
            throw .malformed("NgonNgu")
        }
        let requestedAt = try f.time("ThoiGianGD")
        let ip = try f.string("Ip")
        guard isIPAddress(ip) else { throw .malformed("Ip") }
        let description = try f.text("ThongTinGiaoDich", max: WireLimits.maxDescription)
        let returnURL = try f.url("UrlTraVe")
        let notifyURL = try f.url("UrlThongBao")
        var expiresAt: Int64?
        if object["HanThanhToan"] != nil {
            let deadline = try f.time("HanThanhToan")
            guard deadline > requestedAt else { throw .malformed("HanThanhToan") }
            expiresAt = deadline
        }

        guard case .object(let receiptObject)? = object["ThongTinBienLai"] else { throw .malformed("ThongTinBienLai") }
        let r = Fields(receiptObject, prefix: "ThongTinBienLai.")
        let dossierCode = try r.string("MaHoSo")
        guard isDossierCode(dossierCode) else { throw .malformed("ThongTinBienLai.MaHoSo") }
        let procedureCode = try r.code("MaTTHC")
        let procedureName = try r.text("TenTTHC", max: WireLimits.maxName)
        let agencyCode = try r.code("MaDonVi")
        let agencyName = try r.text("TenDonVi", max: WireLimits.maxName)
        let payerName = try r.text("HoTenNguoiNop", max: WireLimits.maxName)
        guard case .array(let items)? = receiptObject["PhiLePhi"] else { throw .malformed("ThongTinBienLai.PhiLePhi") }
        guard !items.isEmpty, items.count <= WireLimits.maxFeeLines else { throw .malformed("ThongTinBienLai.PhiLePhi") }
        var lines: [FeeLine] = []
        lines.reserveCapacity(items.count)
        for (i, item) in items.enumerated() {
            guard case .object(let lineObject) = item else { throw .malformed("ThongTinBienLai.PhiLePhi[\(i)]") }
            let l = Fields(lineObject, prefix: "ThongTinBienLai.PhiLePhi[\(i)].")
            let kind = try l.string("LoaiPhiLePhi")
            guard kind == "1" || kind == "2" else { throw .malformed("ThongTinBienLai.PhiLePhi[\(i)].LoaiPhiLePhi") }
            lines.append(FeeLine(
                kind: kind, code: try l.code("MaPhiLePhi"), name: try l.text("TenPhiLePhi", max: WireLimits.maxName),
                amount: try l.amount("SoTien")))
        }
        // 50 lines of at most 10^12 each cannot overflow Int64.
        let total = lines.reduce(Int64(0)) { $0 + $1.amount }
        guard total == amount else { throw ProtocolRejection(.amountMismatch, "SoTien") }

        return CreateRequest(
            partner: partner, reference: reference, amount: amount, currency: "VND", requestedAt: requestedAt,
            expiresAt: expiresAt, description: description, returnURL: returnURL, notifyURL: notifyURL,
            dossierCode: dossierCode, procedureCode: procedureCode, procedureName: procedureName,
            agencyCode: agencyCode, agencyName: agencyName, payerName: payerName, lines: lines,
            canonical: root.canonicalText)
    }

    static func query(_ body: [UInt8], partner: String) throws(ProtocolRejection) -> QueryRequest {
        let (_, object) = try envelope(body, partner: partner, messageType: "TRACUU")
        let f = Fields(object)
        return QueryRequest(partner: partner, reference: try f.reference("MaThamChieu"), requestedAt: try f.time("ThoiGianGD"))
    }

    static func refund(_ body: [UInt8], partner: String) throws(ProtocolRejection) -> RefundRequest {
        let (root, object) = try envelope(body, partner: partner, messageType: "HOANTIEN")
        let f = Fields(object)
        let requestID = try f.string("MaYeuCau")
        guard isAlphanumeric(requestID, maxLength: WireLimits.maxRequestID) else { throw .malformed("MaYeuCau") }
        let reference = try f.reference("MaThamChieu")
        let transactionID = try f.string("MaGiaoDich")
        guard isAlphanumeric(transactionID, maxLength: 40) else { throw .malformed("MaGiaoDich") }
        let kind = try f.string("LoaiHoanTien")
        guard kind == "02" || kind == "03" else { throw .malformed("LoaiHoanTien") }
        return RefundRequest(
            partner: partner, requestID: requestID, reference: reference, transactionID: transactionID, kind: kind,
            amount: try f.amount("SoTienHoan"), officer: try f.text("NguoiTao", max: WireLimits.maxName),
            reason: try f.text("LyDo", max: WireLimits.maxDescription, allowEmpty: true),
            requestedAt: try f.time("ThoiGianGD"), canonical: root.canonicalText)
    }

    /// The checks every body shares: JSON object, `MaDoiTac` equal to the verified header (else
    /// `97`), and the expected `LoaiBanTin`.
    private static func envelope(
        _ body: [UInt8], partner: String, messageType: String
    ) throws(ProtocolRejection) -> (JSONValue, [String: JSONValue]) {
        let root: JSONValue
        do { root = try JSONValue.parse(body) } catch { throw .malformed("JSON") }
        guard case .object(let object) = root else { throw .malformed("JSON") }
        // A body that has a `MaDoiTac` other than the verified header's — empty, or not a string,
        // included — is a partner mismatch (97, never remembered); one without it is malformed.
        guard let bodyPartner = object["MaDoiTac"] else { throw .malformed("MaDoiTac") }
        guard case .string(partner) = bodyPartner else { throw ProtocolRejection(.invalidSignature, "MaDoiTac") }
        guard case .string(let type)? = object["LoaiBanTin"], type == messageType else { throw .malformed("LoaiBanTin") }
        return (root, object)
    }

    /// `<dotted agency>-<yyMMdd>-<nnnn>`: at least two dot-separated groups of `[A-Z0-9]`, a real
    /// date (20yy), four digits.
    static func isDossierCode(_ text: String) -> Bool {
        let b = Array(text.utf8)
        guard b.count >= 15, b.count <= 64 + 12 else { return false }
        let agency = b[..<(b.count - 12)]
        let tail = Array(b[(b.count - 12)...])
        guard tail[0] == UInt8(ascii: "-"), tail[7] == UInt8(ascii: "-") else { return false }
        let digits = tail[1...6] + tail[8...11]
        guard digits.allSatisfy(isDigit) else { return false }
        let groups = agency.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard groups.count >= 2, groups.allSatisfy({ !$0.isEmpty && $0.allSatisfy(isUpperAlphanumeric) }) else { return false }
        let d = tail[1...6].map { Int($0 - 0x30) }
        return WireTime.isValidDate(year: 2000 + d[0] * 10 + d[1], month: d[2] * 10 + d[3], day: d[4] * 10 + d[5])
    }

    static func isAlphanumeric(_ text: String, maxLength: Int) -> Bool {
        let u = text.utf8
        return !u.isEmpty && u.count <= maxLength && u.allSatisfy { isUpperAlphanumeric($0) || ($0 >= 0x61 && $0 <= 0x7A) }
    }

    static func isIPAddress(_ text: String) -> Bool {
        let u = text.utf8
        guard !u.isEmpty, u.count <= 45 else { return false }
        if u.contains(UInt8(ascii: ":")) {
            return u.allSatisfy { isDigit($0) || ($0 >= 0x61 && $0 <= 0x66) || ($0 >= 0x41 && $0 <= 0x46) || $0 == 0x3A || $0 == 0x2E }
        }
        let parts = u.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { p in
            !p.isEmpty && p.count <= 3 && p.allSatisfy(isDigit) && (Int(String(decoding: p, as: UTF8.self)) ?? 256) <= 255
        }
    }

    static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
    static func isUpperAlphanumeric(_ c: UInt8) -> Bool { isDigit(c) || (c >= 0x41 && c <= 0x5A) }
}

/// Typed access to one JSON object's fields; every failure names the field.
private struct Fields {
    let object: [String: JSONValue]
    var prefix = ""

    init(_ object: [String: JSONValue], prefix: String = "") {
        self.object = object
        self.prefix = prefix
    }

    func fail(_ name: String) -> ProtocolRejection { .malformed(prefix + name) }

    func string(_ name: String) throws(ProtocolRejection) -> String {
        guard case .string(let s)? = object[name] else { throw fail(name) }
        return s
    }

    func optionalString(_ name: String) throws(ProtocolRejection) -> String? {
        guard let value = object[name] else { return nil }
        guard case .string(let s) = value else { throw fail(name) }
        return s
    }

    /// Free text of 1…`max` Unicode characters (code points), without control characters.
    func text(_ name: String, max: Int, allowEmpty: Bool = false) throws(ProtocolRejection) -> String {
        let s = try string(name)
        var count = 0
        for scalar in s.unicodeScalars {
            guard scalar.value >= 0x20, scalar.value != 0x7F, !(0x80...0x9F).contains(scalar.value) else { throw fail(name) }
            count += 1
        }
        guard count <= max, allowEmpty || count > 0 else { throw fail(name) }
        guard allowEmpty || !s.unicodeScalars.allSatisfy({ $0 == " " }) else { throw fail(name) }
        return s
    }

    /// A code: 1…50 characters of `[A-Za-z0-9._-]`.
    func code(_ name: String) throws(ProtocolRejection) -> String {
        let s = try string(name)
        let u = s.utf8
        guard !u.isEmpty, u.count <= WireLimits.maxCode,
              u.allSatisfy({ WireParser.isUpperAlphanumeric($0) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2E || $0 == 0x5F || $0 == 0x2D })
        else { throw fail(name) }
        return s
    }

    /// `MaThamChieu`: 1–20 characters of `[A-Za-z0-9]`.
    func reference(_ name: String) throws(ProtocolRejection) -> String {
        let s = try string(name)
        guard WireParser.isAlphanumeric(s, maxLength: WireLimits.maxReference) else { throw fail(name) }
        return s
    }

    /// An integer literal of 1…10^12 đồng; `150000.0`, `1.5e5`, strings and negatives are refused.
    func amount(_ name: String) throws(ProtocolRejection) -> Int64 {
        guard case .number(let n)? = object[name], let value = n.int64, value >= 1, value <= WireLimits.maxAmount
        else { throw fail(name) }
        return value
    }

    /// A `yyyyMMddHHmmss` Vietnam time, returned as Unix seconds.
    func time(_ name: String) throws(ProtocolRejection) -> Int64 {
        guard let value = WireTime.parse(try string(name)) else { throw fail(name) }
        return value
    }

    /// An absolute `http`/`https` URL without spaces or control characters.
    func url(_ name: String) throws(ProtocolRejection) -> String {
        let s = try string(name)
        let lower = s.lowercased()
        let rest: Substring
        if lower.hasPrefix("https://") {
            rest = s.dropFirst(8)
        } else if lower.hasPrefix("http://") {
            rest = s.dropFirst(7)
        } else {
            throw fail(name)
        }
        guard s.utf8.count <= WireLimits.maxURL, let first = rest.utf8.first, first != UInt8(ascii: "/"),
              s.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }), !s.contains("#")
        else { throw fail(name) }
        return s
    }
}
