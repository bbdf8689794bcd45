namespace WhaleWall.Firewall.Dns;

/// <summary>Response codes WhaleWall answers with or reads (RFC 1035 4.1.1).</summary>
public enum DnsRcode : byte
{
    NoError = 0,
    FormErr = 1,
    ServFail = 2,
    NxDomain = 3,
    NotImp = 4,
    Refused = 5,
}

/// <summary>Record types and classes by number (RFC 1035, 3596, 9460), and their mnemonics.</summary>
public static class DnsTypes
{
    public const ushort A = 1, NS = 2, CNAME = 5, SOA = 6, PTR = 12, MX = 15, TXT = 16, AAAA = 28,
        SRV = 33, NAPTR = 35, OPT = 41, DS = 43, DNSKEY = 48, TLSA = 52, SVCB = 64, HTTPS = 65,
        IXFR = 251, AXFR = 252, ANY = 255, CAA = 257;

    public const ushort ClassIn = 1;

    /// <summary>Types a label may allow on top of A and AAAA (<c>whalewall.dns.types</c>).
    /// Zone transfers, ANY and OPT are never allowed.</summary>
    public static readonly IReadOnlyDictionary<string, ushort> Allowable = new Dictionary<string, ushort>(StringComparer.OrdinalIgnoreCase)
    {
        ["CNAME"] = CNAME, ["HTTPS"] = HTTPS, ["SVCB"] = SVCB, ["SRV"] = SRV, ["MX"] = MX, ["TXT"] = TXT,
        ["PTR"] = PTR, ["NS"] = NS, ["SOA"] = SOA, ["CAA"] = CAA, ["NAPTR"] = NAPTR, ["TLSA"] = TLSA,
        ["DS"] = DS, ["DNSKEY"] = DNSKEY,
    };

    public static string Name(ushort type) => type switch
    {
        A => "A", AAAA => "AAAA", ANY => "ANY", AXFR => "AXFR", IXFR => "IXFR", OPT => "OPT",
        _ => Allowable.FirstOrDefault(kv => kv.Value == type).Key ?? $"TYPE{type}",
    };
}
