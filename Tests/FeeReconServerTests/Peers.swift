import CurlHTTP
import FeeReconCore
import Foundation
import Glibc
import Logging
import PortalGateway
import Signing
import TestSupport

enum PortalGatewayClientFactory {
    static func make(baseURL: String, partners: [PartnerCode: [WebhookSecret]], http: CurlHTTPClient, timeout: Duration) -> any PaymentGateway {
        PortalGatewayClient(
            configuration: PortalConfiguration(baseURL: baseURL, partners: partners, requestTimeout: timeout),
            http: http, logger: Logger.test("gateway"))
    }
}

