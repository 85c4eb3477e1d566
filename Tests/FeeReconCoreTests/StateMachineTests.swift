import FeeReconCore
import PropertyBased
import Testing

private let outcomes: [PaymentOutcome] = [
    .succeeded, .failed(.insufficientFunds), .failed(.suspectedFraud), .failed(.reversed), .failed(.declined),
    .expired, .cancelled, .pending,
]
private let sources: [OutcomeSource] = [.callback, .query, .settlement]

@Suite struct IntentStateMachineTests {
    /// Whatever arrives, in whatever order, every change the decision makes is an edge of the graph.
    @Test func everyDecisionIsAnEdge() async {
        await propertyCheck(
            count: 500,
            input: Gen<IntentStatus>.case, Gen.int(in: 0...(outcomes.count - 1)), Gen.int(in: 0...(sources.count - 1))
        ) { status, outcomeIndex, sourceIndex in
            let decision = IntentStateMachine.decide(current: status, outcome: outcomes[outcomeIndex], source: sources[sourceIndex])
            if case .apply(let to, let event, _) = decision {
                #expect(IntentStateMachine.allows(from: status, event: event, to: to))
            }
        }
    }

    /// Replaying any sequence of outcomes a second time changes nothing: a status reached by an
    /// outcome answers that same outcome with `alreadyApplied`, `stillPending` or `conflicting`.
    @Test func applyingTwiceIsIdempotent() async {
        let sequence = Gen.int(in: 0...(outcomes.count - 1)).array(of: 1...8)
        await propertyCheck(count: 300, input: sequence) { indices in
            var status = IntentStatus.pending
            for index in indices {
                let outcome = outcomes[index]
                if case .apply(let to, _, _) = IntentStateMachine.decide(current: status, outcome: outcome, source: .callback) {
                    status = to
                    if case .apply = IntentStateMachine.decide(current: status, outcome: outcome, source: .callback) {
                        Issue.record("\(outcome) applied twice from \(status)")
                    }
                }
            }
        }
    }

    /// Money that moved is never forgotten: once a success was seen, the intent stays succeeded
    /// whatever callbacks come after it.
    @Test func successSticksAgainstLaterCallbacks() async {
        let sequence = Gen.int(in: 0...(outcomes.count - 1)).array(of: 0...8)
        await propertyCheck(count: 300, input: sequence, sequence) { before, after in
            var status = IntentStatus.pending
            for index in before + [0] + after {
                if case .apply(let to, _, _) = IntentStateMachine.decide(current: status, outcome: outcomes[index], source: .callback) {
                    status = to
                }
            }
            #expect(status == .succeeded)
        }
    }

    @Test func namedCorrections() {
        #expect(IntentStateMachine.decide(current: .expired, outcome: .succeeded, source: .callback)
            == .apply(to: .succeeded, event: .lateSuccessAfterExpiry, review: .lateSuccessAfterExpiry))
        #expect(IntentStateMachine.decide(current: .failed, outcome: .succeeded, source: .callback)
            == .apply(to: .succeeded, event: .successAfterFailure, review: .successAfterFailure))
        #expect(IntentStateMachine.decide(current: .succeeded, outcome: .failed(.insufficientFunds), source: .callback) == .conflicting)
        #expect(IntentStateMachine.decide(current: .succeeded, outcome: .failed(.reversed), source: .callback) == .conflicting)
        #expect(IntentStateMachine.decide(current: .succeeded, outcome: .failed(.reversed), source: .settlement)
            == .apply(to: .failed, event: .reversedAfterSuccess, review: .reversedAfterSuccess))
        #expect(IntentStateMachine.decide(current: .pending, outcome: .failed(.suspectedFraud), source: .callback)
            == .apply(to: .failed, event: .paymentFailed, review: .suspectedFraud))
        #expect(IntentStateMachine.decide(current: .unknown, outcome: .pending, source: .query)
            == .apply(to: .pending, event: .gatewayAccepted, review: nil))
        #expect(IntentStateMachine.decide(current: .pending, outcome: .pending, source: .query) == .stillPending)
        #expect(IntentStateMachine.decide(current: .succeeded, outcome: .succeeded, source: .callback) == .alreadyApplied)
    }

    /// A query answered "pending" just before a callback settled the intent is out of date, not a
    /// contradiction; a callback cannot say pending, but if one did, it would be.
    @Test func aStalePendingQueryAnswerChangesNothing() {
        for current in [IntentStatus.succeeded, .refundPending, .refunded, .partiallyRefunded, .failed, .expired, .cancelled] {
            #expect(IntentStateMachine.decide(current: current, outcome: .pending, source: .query) == .alreadyApplied, "\(current)")
            #expect(IntentStateMachine.decide(current: current, outcome: .pending, source: .callback) == .conflicting, "\(current)")
        }
    }

    /// The query reports an expired or cancelled payment as failed (`TrangThaiGD 02`): whichever
    /// of the query and the late callback comes first, the other agrees with it. A debit (fraud
    /// suspicion, reversal) after an expiry or a cancellation does not.
    @Test func unpaidOutcomesAgreeWithEachOther() {
        let unpaid: [PaymentOutcome] = [.failed(.declined), .failed(.insufficientFunds), .expired, .cancelled]
        for current in [IntentStatus.failed, .expired, .cancelled] {
            for outcome in unpaid {
                for source in sources {
                    #expect(IntentStateMachine.decide(current: current, outcome: outcome, source: source) == .alreadyApplied,
                            "\(outcome) from \(source) after \(current)")
                }
            }
        }
        #expect(IntentStateMachine.decide(current: .failed, outcome: .failed(.reversed), source: .settlement) == .alreadyApplied)
        #expect(IntentStateMachine.decide(current: .failed, outcome: .failed(.suspectedFraud), source: .callback) == .alreadyApplied)
        for current in [IntentStatus.expired, .cancelled] {
            #expect(IntentStateMachine.decide(current: current, outcome: .failed(.reversed), source: .query) == .conflicting)
            #expect(IntentStateMachine.decide(current: current, outcome: .failed(.suspectedFraud), source: .callback) == .conflicting)
        }
    }

    @Test func everyStatusIsReachable() {
        var reached: Set<IntentStatus> = []
        var frontier: [IntentStatus?] = [nil]
        while let from = frontier.popLast() {
            for edge in IntentStateMachine.transitions where edge.from == from && reached.insert(edge.to).inserted {
                frontier.append(edge.to)
            }
        }
        #expect(reached == Set(IntentStatus.allCases))
    }

    @Test func dossierFollowsPayments() {
        let due = Money(dong: 150_000)
        #expect(DossierStatus.from(amountDue: due, amountPaid: .zero) == .awaitingPayment)
        #expect(DossierStatus.from(amountDue: due, amountPaid: Money(dong: 149_999)) == .awaitingPayment)
        #expect(DossierStatus.from(amountDue: due, amountPaid: due) == .paid)
        #expect(DossierStatus.from(amountDue: due, amountPaid: Money(dong: 300_000)) == .overpaid)
    }
}
