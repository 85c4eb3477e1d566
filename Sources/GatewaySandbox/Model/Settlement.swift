/// What the settlement file needs of a payment: its identity, amounts and the times its state changed.
struct SettlementPayment: Sendable, Equatable {
    var reference: String
    var transactionID: String
    var dossierCode: String
    var procedureCode: String
    var bank: String
    var amount: Int64
    var feeAmount: Int64
    var chargeAmount: Int64
    var currency: String
    /// The first final outcome and its time (Unix seconds).
    var outcome: PaymentOutcome
    var outcomeAt: Int64
    /// A later change (reversal after success, late success after expiry) and its time.
    var laterStatus: PaymentStatus?
    var laterAt: Int64?
}

/// What the settlement file needs of a refund that reached its outcome.
struct SettlementRefund: Sendable, Equatable {
    var refundID: String
    var reference: String
    var dossierCode: String
    var procedureCode: String
    var bank: String
    var amount: Int64
    var currency: String
    var status: RefundStatus
    var outcomeAt: Int64
}

/// The §6 daily settlement file of one partner for one Vietnam day.
struct SettlementFile: Sendable {
    static let header = "NgayDoiSoat,MaDoiTac,MaThamChieu,MaHoSo,MaTTHC,MaGiaoDich,MaNganHang,LoaiGiaoDich,ThoiGianGD,ThoiGianHachToan,SoTien,SoTienPhi,SoTienLePhi,MaTienTe,TrangThaiGD,TKThuHuong,MaNHThuHuong"

    struct Row: Sendable, Equatable {
        var reference: String
        var dossierCode: String
        var procedureCode: String
        var transactionID: String
        var bank: String
        var isRefund: Bool
        var time: Int64
        var amount: Int64
        var feeAmount: Int64?
        var chargeAmount: Int64?
        var currency: String
        var status: String
    }

    var day: String
    var partner: String
    var account: String
    var accountBank: String
    var rows: [Row]
    /// Added to the trailer's payment total when the broken-trailer fault strikes.
    var trailerCorruption: Int64 = 0

    /// One row per payment whose state changed that day (its last state of the day, so a success
    /// and its same-day reversal are one `04` row), one per refund that ended that day; ordered by
    /// time, then by id.
    init(
        day: String, dayStart: Int64, partner: String, account: String, accountBank: String,
        payments: [SettlementPayment], refunds: [SettlementRefund]
    ) {
        self.day = day
        self.partner = partner
        self.account = account
        self.accountBank = accountBank
        let dayEnd = dayStart + 86_400
        var rows: [Row] = []
        for p in payments {
            var changes: [(Int64, PaymentStatus)] = [(p.outcomeAt, p.outcome.resultingStatus)]
            if let status = p.laterStatus, let at = p.laterAt { changes.append((at, status)) }
            guard let last = changes.filter({ $0.0 >= dayStart && $0.0 < dayEnd }).max(by: { $0.0 < $1.0 }) else { continue }
            rows.append(Row(
                reference: p.reference, dossierCode: p.dossierCode, procedureCode: p.procedureCode,
                transactionID: p.transactionID, bank: p.bank, isRefund: false, time: last.0, amount: p.amount,
                feeAmount: p.feeAmount, chargeAmount: p.chargeAmount, currency: p.currency, status: last.1.wireStatus))
        }
        for r in refunds where r.status != .pending && r.outcomeAt >= dayStart && r.outcomeAt < dayEnd {
            rows.append(Row(
                reference: r.reference, dossierCode: r.dossierCode, procedureCode: r.procedureCode,
                transactionID: r.refundID, bank: r.bank, isRefund: true, time: r.outcomeAt, amount: r.amount,
                feeAmount: nil, chargeAmount: nil, currency: r.currency, status: r.status.wireStatus))
        }
        rows.sort { ($0.time, $0.transactionID) < ($1.time, $1.transactionID) }
        self.rows = rows
    }

    /// Changes the amount of a payment row by `delta`, moving the fee part with it so the row's
    /// `SoTienPhi + SoTienLePhi = SoTien` still holds.
    mutating func changeAmount(ofRowAt index: Int, by delta: Int64) {
        rows[index].amount += delta
        if rows[index].isRefund { return }
        if let fee = rows[index].feeAmount, fee + delta >= 0 {
            rows[index].feeAmount = fee + delta
        } else if let charge = rows[index].chargeAmount {
            rows[index].chargeAmount = charge + delta
        }
    }

    var paymentTotal: Int64 { rows.filter { !$0.isRefund && $0.status == "00" }.reduce(0) { $0 + $1.amount } }
    var refundTotal: Int64 { rows.filter { $0.isRefund && $0.status == "00" }.reduce(0) { $0 + $1.amount } }

    /// The CSV bytes: header, rows, `TONG` trailer; `\n` line ends, a final newline, no BOM.
    var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(200 * (rows.count + 2))
        out.append(contentsOf: Self.header.utf8)
        out.append(0x0A)
        let accounting: String
        if let start = WireTime.parseDay(day) {
            accounting = WireTime.format(unixSeconds: start + 86_400)
        } else {
            accounting = ""
        }
        for row in rows {
            let fields: [String] = [
                day, partner, row.reference, row.dossierCode, row.procedureCode, row.transactionID, row.bank,
                row.isRefund ? "HOANTIEN" : "THANHTOAN", WireTime.format(unixSeconds: row.time), accounting,
                String(row.amount), row.feeAmount.map(String.init) ?? "", row.chargeAmount.map(String.init) ?? "",
                row.currency, row.status, account, accountBank,
            ]
            for (i, field) in fields.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                Self.appendField(field, to: &out)
            }
            out.append(0x0A)
        }
        let trailer = "TONG,\(rows.count),\(paymentTotal + trailerCorruption),\(refundTotal)\n"
        out.append(contentsOf: trailer.utf8)
        return out
    }

    /// RFC 4180 quoting, only when a field needs it.
    private static func appendField(_ field: String, to out: inout [UInt8]) {
        let needsQuotes = field.utf8.contains { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") || $0 == 0x0A || $0 == 0x0D }
        guard needsQuotes else {
            out.append(contentsOf: field.utf8)
            return
        }
        out.append(UInt8(ascii: "\""))
        for c in field.utf8 {
            if c == UInt8(ascii: "\"") { out.append(c) }
            out.append(c)
        }
        out.append(UInt8(ascii: "\""))
    }
}
