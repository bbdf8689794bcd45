namespace WhaleWall.Firewall.Labels;

/// <summary>ICMP and ICMPv6 type names (as nft spells them) or numbers.</summary>
public static class IcmpSyntax
{
    private static readonly Dictionary<string, byte> V4 = new()
    {
        ["echo-reply"] = 0, ["destination-unreachable"] = 3, ["source-quench"] = 4, ["redirect"] = 5,
        ["echo-request"] = 8, ["router-advertisement"] = 9, ["router-solicitation"] = 10,
        ["time-exceeded"] = 11, ["parameter-problem"] = 12, ["timestamp-request"] = 13,
        ["timestamp-reply"] = 14, ["info-request"] = 15, ["info-reply"] = 16,
        ["address-mask-request"] = 17, ["address-mask-reply"] = 18,
    };

    private static readonly Dictionary<string, byte> V6 = new()
    {
        ["destination-unreachable"] = 1, ["packet-too-big"] = 2, ["time-exceeded"] = 3,
        ["parameter-problem"] = 4, ["echo-request"] = 128, ["echo-reply"] = 129,
        ["mld-listener-query"] = 130, ["mld-listener-report"] = 131, ["mld-listener-done"] = 132,
        ["nd-router-solicit"] = 133, ["nd-router-advert"] = 134, ["nd-neighbor-solicit"] = 135,
        ["nd-neighbor-advert"] = 136, ["nd-redirect"] = 137,
    };

    public static byte? Parse(string text, bool v6)
    {
        if (byte.TryParse(text, System.Globalization.NumberStyles.None, null, out var number)) return number;
        return (v6 ? V6 : V4).TryGetValue(text.ToLowerInvariant(), out var type) ? type : null;
    }

    /// <summary>The name nft gives an ICMP type, or its number.</summary>
    public static string Name(byte type, bool v6) =>
        (v6 ? V6 : V4).FirstOrDefault(p => p.Value == type).Key ?? type.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
