/// A PostgreSQL type OID, as sent with parameters and reported for result columns.
public struct PostgresDataType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32

    public init(rawValue: UInt32) {
        self.rawValue = rawValue
    }

    public init(_ rawValue: UInt32) {
        self.rawValue = rawValue
    }

    public static let bool = Self(16)
    public static let bytea = Self(17)
    public static let name = Self(19)
    public static let int8 = Self(20)
    public static let int2 = Self(21)
    public static let int4 = Self(23)
    public static let text = Self(25)
    public static let oid = Self(26)
    public static let json = Self(114)
    public static let bpchar = Self(1042)
    public static let varchar = Self(1043)
    public static let date = Self(1082)
    public static let timestamp = Self(1114)
    public static let timestamptz = Self(1184)
    public static let numeric = Self(1700)
    public static let uuid = Self(2950)
    public static let jsonb = Self(3802)
    public static let unknown = Self(705)

    public static let boolArray = Self(1000)
    public static let byteaArray = Self(1001)
    public static let int2Array = Self(1005)
    public static let int4Array = Self(1007)
    public static let textArray = Self(1009)
    public static let varcharArray = Self(1015)
    public static let int8Array = Self(1016)
    public static let timestamptzArray = Self(1185)
    public static let uuidArray = Self(2951)
    public static let jsonbArray = Self(3807)

    /// The type's SQL name where this library knows it, else `oid <n>`.
    public var description: String {
        switch rawValue {
        case 16: "bool"
        case 17: "bytea"
        case 19: "name"
        case 20: "int8"
        case 21: "int2"
        case 23: "int4"
        case 25: "text"
        case 26: "oid"
        case 114: "json"
        case 705: "unknown"
        case 1042: "bpchar"
        case 1043: "varchar"
        case 1082: "date"
        case 1114: "timestamp"
        case 1184: "timestamptz"
        case 1700: "numeric"
        case 2950: "uuid"
        case 3802: "jsonb"
        case 1000: "bool[]"
        case 1001: "bytea[]"
        case 1005: "int2[]"
        case 1007: "int4[]"
        case 1009: "text[]"
        case 1015: "varchar[]"
        case 1016: "int8[]"
        case 1185: "timestamptz[]"
        case 2951: "uuid[]"
        case 3807: "jsonb[]"
        default: "oid \(rawValue)"
        }
    }
}
