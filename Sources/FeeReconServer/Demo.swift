import Cryptography
import FeeReconCore
import FeeReconStore
import Foundation
import Logging
import Postgres

/// Demo data for the embedded demo (`scripts/run`): two agencies of Bình Thuận province and a
/// handful of dossiers dated today, plus an API key for the one-stop system. Idempotent.
public enum DemoData {
    public struct Seeded: Sendable {
        public var dossierCodes: [String]
        /// Set when this run created the key (it is shown once).
        public var apiKey: String?
    }

    public static func seed(database: PostgresClient, partner: PartnerCode, now: VietnamTime, logger: Logger) async throws -> Seeded {
        let justice = AgencyCode(rawValue: "000.00.15.H10")!
        let construction = AgencyCode(rawValue: "000.00.13.H10")!
        let date = now.date
        let day = String(String(date.year).suffix(2)) + (date.month < 10 ? "0" : "") + "\(date.month)" + (date.day < 10 ? "0" : "") + "\(date.day)"

        let samples: [(AgencyCode, String, String, String, [FeeLine])] = [
            (justice, "1.001234", "Cấp bản sao trích lục hộ tịch", "Nguyễn Văn An", [
                FeeLine(kind: .charge, code: "LP01", name: "Lệ phí cấp bản sao trích lục", amount: Money(dong: 100_000)),
                FeeLine(kind: .fee, code: "PH01", name: "Phí cung cấp thông tin", amount: Money(dong: 50_000)),
            ]),
            (justice, "2.000908", "Chứng thực chữ ký trong giấy tờ, văn bản", "Trần Thị Bích Ngọc", [
                FeeLine(kind: .fee, code: "PH02", name: "Phí chứng thực chữ ký", amount: Money(dong: 10_000)),
            ]),
            (justice, "1.004873", "Cấp phiếu lý lịch tư pháp", "Lê Hoàng Phúc", [
                FeeLine(kind: .fee, code: "PH03", name: "Phí cấp phiếu lý lịch tư pháp", amount: Money(dong: 200_000)),
            ]),
            (construction, "1.009972", "Cấp giấy phép xây dựng nhà ở riêng lẻ", "Phạm Minh Đức", [
                FeeLine(kind: .charge, code: "LP10", name: "Lệ phí cấp giấy phép xây dựng", amount: Money(dong: 75_000)),
            ]),
            (construction, "1.009994", "Cấp chứng chỉ hành nghề hoạt động xây dựng", "Võ Thị Thanh Hằng", [
                FeeLine(kind: .charge, code: "LP11", name: "Lệ phí cấp chứng chỉ hành nghề", amount: Money(dong: 150_000)),
                FeeLine(kind: .fee, code: "PH11", name: "Phí sát hạch", amount: Money(dong: 300_000)),
            ]),
        ]

        return try await database.withTransaction { db in
            let justiceAgency = try await DossierStore.upsertAgency(
                code: justice, name: "Sở Tư pháp tỉnh Bình Thuận", partner: partner, on: db)
            let constructionAgency = try await DossierStore.upsertAgency(
                code: construction, name: "Sở Xây dựng tỉnh Bình Thuận", partner: partner, on: db)
            var codes: [String] = []
            for (index, sample) in samples.enumerated() {
                let code = DossierCode(rawValue: "\(sample.0.rawValue)-\(day)-\(String(format: "%04d", index + 1))")!
                codes.append(code.rawValue)
                guard try await DossierStore.dossier(code: code, on: db) == nil else { continue }
                let details = DossierDetails(procedureCode: sample.1, procedureName: sample.2, applicantName: sample.3, feeLines: sample.4)
                _ = try await DossierStore.insertDossier(
                    code: code, agencyID: sample.0 == justice ? justiceAgency.id : constructionAgency.id, details: details,
                    amountDue: Money.sum(sample.4.map(\.amount))!, payToken: SecureRandom.token(bytes: 32), on: db)
            }
            let hasKey = try await APIKeyStore.exists(name: "Demo one-stop system", on: db)
            let key = hasKey ? nil : try await APIKeyStore.create(
                name: "Demo one-stop system", agencyIDs: [justiceAgency.id, constructionAgency.id], on: db)
            return Seeded(dossierCodes: codes, apiKey: key?.plaintext)
        }
    }
}
