import FeeReconCore

/// Reads a settlement file (§6) line by line from its verified bytes, handing each row over as it
/// is parsed, and checks the trailer at the end. Any deviation from the format — or a trailer that
/// does not match the rows — is an `invalidSettlementFile` error naming the line; callers stage
/// the rows and discard them all when this throws.
struct SettlementFileReader {
    static let header = [
        "NgayDoiSoat", "MaDoiTac", "MaThamChieu", "MaHoSo", "MaTTHC", "MaGiaoDich", "MaNganHang", "LoaiGiaoDich",
        "ThoiGianGD", "ThoiGianHachToan", "SoTien", "SoTienPhi", "SoTienLePhi", "MaTienTe", "TrangThaiGD",
        "TKThuHuong", "MaNHThuHuong",
    ]

    let day: CivilDate
    let partner: PartnerCode

    /// Parses `bytes` (the whole, already verified body) and returns the trailer's figures.
    func read(
        _ bytes: [UInt8], row emit: (SettlementRow) async throws -> Void
    ) async throws(GatewayError) -> (rowCount: Int, paymentTotal: Money, refundTotal: Money) {
        guard !bytes.starts(with: [0xEF, 0xBB, 0xBF]) else { throw invalid(1, "starts with a byte-order mark") }
        guard bytes.last == UInt8(ascii: "\n") else { throw invalid(nil, "does not end with a newline") }
        let accountingTime = VietnamTime(date: day.adding(days: 1))

        var lineNumber = 0
        var start = 0
        var rows = 0
        var paymentTotal = Money.zero
        var refundTotal = Money.zero
        var trailer: (count: Int, payments: Money, refunds: Money)?

        while start < bytes.count {
            guard let end = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) else { break }
            lineNumber += 1
            let fields = try Self.fields(bytes[start..<end], line: lineNumber)
            start = end + 1

            if lineNumber == 1 {
                guard fields == Self.header else { throw invalid(1, "header row is not the settlement format") }
                continue
            }
            guard trailer == nil else { throw invalid(lineNumber, "has content after the trailer") }
            if fields.first == "TONG" {
                guard fields.count == 4, let count = Self.integer(fields[1]),
                      let payments = Self.integer(fields[2]), let refunds = Self.integer(fields[3])
                else { throw invalid(lineNumber, "trailer must be TONG,<rows>,<payments>,<refunds>") }
                trailer = (Int(count), Money(dong: payments), Money(dong: refunds))
                continue
            }
            let row = try parseRow(fields, line: lineNumber, accountingTime: accountingTime)
            rows += 1
            if row.status == .succeeded {
                switch row.kind {
                case .payment:
                    guard let sum = paymentTotal.adding(row.amount) else { throw invalid(lineNumber, "payment total overflows") }
                    paymentTotal = sum
                case .refund:
                    guard let sum = refundTotal.adding(row.amount) else { throw invalid(lineNumber, "refund total overflows") }
                    refundTotal = sum
                }
            }
            do {
                try await emit(row)
            } catch let error as GatewayError {
                throw error
            } catch {
                throw GatewayError(.invalidSettlementFile, "line \(lineNumber): the row could not be stored")
            }
        }
        guard lineNumber >= 1 else { throw invalid(nil, "is empty") }
        guard let trailer else { throw invalid(nil, "has no TONG trailer row") }
        guard trailer.count == rows else {
            throw invalid(nil, "trailer counts \(trailer.count) rows but the file has \(rows)")
        }
        guard trailer.payments == paymentTotal else {
            throw invalid(nil, "trailer payment total \(trailer.payments.dong) differs from the rows' \(paymentTotal.dong)")
        }
        guard trailer.refunds == refundTotal else {
            throw invalid(nil, "trailer refund total \(trailer.refunds.dong) differs from the rows' \(refundTotal.dong)")
        }
        return (rows, paymentTotal, refundTotal)
    }

    private func parseRow(_ f: [String], line: Int, accountingTime: VietnamTime) throws(GatewayError) -> SettlementRow {
        guard f.count == Self.header.count else {
            throw invalid(line, "has \(f.count) fields, expected \(Self.header.count)")
        }
        guard CivilDate(f[0]) == day, f[0].utf8.count == 8 else { throw invalid(line, "NgayDoiSoat is not the requested day") }
        guard f[1] == partner.rawValue else { throw invalid(line, "MaDoiTac is not this partner") }
        guard !f[2].isEmpty else { throw invalid(line, "MaThamChieu is empty") }
        guard !f[5].isEmpty else { throw invalid(line, "MaGiaoDich is empty") }
        let kind: SettlementRow.Kind
        switch f[7] {
        case "THANHTOAN": kind = .payment
        case "HOANTIEN": kind = .refund
        default: throw invalid(line, "LoaiGiaoDich must be THANHTOAN or HOANTIEN")
        }
        guard let occurredAt = VietnamTime(compact: f[8]) else { throw invalid(line, "ThoiGianGD is not yyyyMMddHHmmss") }
        guard let postedAt = VietnamTime(compact: f[9]), postedAt == accountingTime else {
            throw invalid(line, "ThoiGianHachToan must be the next day at 00:00:00")
        }
        guard let amount = Self.integer(f[10]), amount >= 1, amount <= Money.maximumTransaction.dong else {
            throw invalid(line, "SoTien must be an integer number of đồng from 1 to 10^12")
        }
        var fee: Money?
        var charge: Money?
        switch kind {
        case .payment:
            guard let feeAmount = Self.integer(f[11]), let chargeAmount = Self.integer(f[12]),
                  feeAmount.addingReportingOverflow(chargeAmount) == (amount, false)
            else { throw invalid(line, "SoTienPhi + SoTienLePhi must equal SoTien") }
            fee = Money(dong: feeAmount)
            charge = Money(dong: chargeAmount)
        case .refund:
            guard f[11].isEmpty, f[12].isEmpty else { throw invalid(line, "a refund row leaves SoTienPhi and SoTienLePhi empty") }
        }
        guard f[13] == "VND" else { throw invalid(line, "MaTienTe must be VND") }
        let status: SettlementRow.Status = switch TransactionStatusCode(rawValue: f[14]) {
        case .success: .succeeded
        case .pending: .pending
        case .failed: .failed
        case .reversed: .reversed
        case .refundInProgress: .refundInProgress
        case .refundSent: .refundSent
        case .refundRejected: .refundRejected
        case nil: .unrecognized(code: f[14])
        }
        return SettlementRow(
            line: line, day: day, partner: f[1], reference: f[2], dossier: f[3], procedureCode: f[4],
            gatewayTransaction: f[5], bankCode: f[6], kind: kind, occurredAt: occurredAt, postedAt: postedAt,
            amount: Money(dong: amount), feeAmount: fee, chargeAmount: charge, currency: f[13], status: status,
            beneficiaryAccount: f[15], beneficiaryBank: f[16])
    }

    private func invalid(_ line: Int?, _ reason: String) -> GatewayError {
        GatewayError(.invalidSettlementFile, line.map { "line \($0) \(reason)" } ?? "file \(reason)")
    }

    /// A non-negative decimal integer without sign or spaces.
    static func integer(_ text: String) -> Int64? {
        guard !text.isEmpty, text.utf8.count <= 18, text.utf8.allSatisfy({ (48...57).contains($0) }) else { return nil }
        return Int64(text)
    }

    /// Splits one CSV line (RFC 4180 quoting allowed) into UTF-8 fields.
    static func fields(_ line: ArraySlice<UInt8>, line number: Int) throws(GatewayError) -> [String] {
        var fields: [String] = []
        var current: [UInt8] = []
        var index = line.startIndex
        var quoted = false
        var fieldStart = true
        while index < line.endIndex {
            let byte = line[index]
            if quoted {
                if byte == UInt8(ascii: "\"") {
                    let next = line.index(after: index)
                    if next < line.endIndex && line[next] == UInt8(ascii: "\"") {
                        current.append(byte)
                        index = next
                    } else {
                        quoted = false
                    }
                } else {
                    current.append(byte)
                }
            } else if byte == UInt8(ascii: ",") {
                fields.append(try utf8(current, line: number))
                current.removeAll(keepingCapacity: true)
                fieldStart = true
                index = line.index(after: index)
                continue
            } else if byte == UInt8(ascii: "\"") && fieldStart {
                quoted = true
            } else {
                current.append(byte)
            }
            fieldStart = false
            index = line.index(after: index)
        }
        guard !quoted else { throw GatewayError(.invalidSettlementFile, "line \(number) has an unterminated quote") }
        fields.append(try utf8(current, line: number))
        return fields
    }

    private static func utf8(_ bytes: [UInt8], line: Int) throws(GatewayError) -> String {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw GatewayError(.invalidSettlementFile, "line \(line) is not valid UTF-8")
        }
        return text
    }
}
