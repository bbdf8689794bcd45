using System.Net;
using System.Text.Json.Nodes;

namespace WhaleWall.TestSupport;

/// <summary>Reads the daemon's nftables table in a namespace with the nft CLI (tests may shell
/// out to nft; the product may not).</summary>
public sealed class KernelTable
{
    public string NsPath { get; }
    public string Family { get; }
    public string Name { get; }

    public KernelTable(string nsPath, string name, string family = "inet")
    {
        NsPath = nsPath; Name = name; Family = family;
    }

    /// <summary>The `nft -j list table` document, or null if the table does not exist.</summary>
    public JsonNode? ListJson()
    {
        var (code, outp, _) = Shell.Try("nsenter", "--net=" + NsPath, "nft", "-j", "list", "table", Family, Name);
        if (code != 0 || string.IsNullOrWhiteSpace(outp)) return null;
        return JsonNode.Parse(outp);
    }

    /// <summary>The table in nft's text syntax (for failure messages).</summary>
    public string ListText()
    {
        var (code, outp, err) = Shell.Try("nsenter", "--net=" + NsPath, "nft", "list", "table", Family, Name);
        return code == 0 ? outp : $"(no table {Family} {Name}: {err.Trim()})";
    }

    public bool Exists() => ListJson() is not null;

    /// <summary>Set name -> its elements (raw JSON nodes as nft prints them).</summary>
    public Dictionary<string, List<JsonNode>> Sets()
    {
        var result = new Dictionary<string, List<JsonNode>>();
        if (ListJson()?["nftables"] is not JsonArray items) return result;
        foreach (var item in items)
        {
            if (item?["set"] is JsonObject set) Add(set);
            else if (item?["map"] is JsonObject map) Add(map);
        }
        return result;

        void Add(JsonObject s)
        {
            var name = s["name"]!.GetValue<string>();
            var list = new List<JsonNode>();
            if (s["elem"] is JsonArray elems)
                foreach (var e in elems) if (e is not null) list.Add(e.DeepClone());
            result[name] = list;
        }
    }

    public List<JsonNode> Elements(string set) => Sets().TryGetValue(set, out var l) ? l : new List<JsonNode>();

    /// <summary>True if the address is an element of <c>managed4</c> / <c>managed6</c>.</summary>
    public bool IsManaged(string ip)
    {
        var set = IPAddress.Parse(ip).AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? "managed6" : "managed4";
        return Elements(set).Any(e => Covers(e, ip));
    }

    /// <summary>Every element of every set/map that contains this exact address
    /// (as a value, a concatenation part, a /32 prefix or a single-address range).</summary>
    public List<(string Set, string Element)> ElementsMentioning(string ip)
    {
        var found = new List<(string, string)>();
        foreach (var (set, elems) in Sets())
            foreach (var e in elems)
                if (Mentions(e, ip)) found.Add((set, e.ToJsonString()));
        return found;
    }

    /// <summary>Polls until <paramref name="predicate"/> holds for this table.</summary>
    public async Task<bool> WaitUntil(Func<KernelTable, bool> predicate, TimeSpan timeout) =>
        await E2eProcess.Eventually(() => predicate(this), timeout, TimeSpan.FromMilliseconds(100));

    /// <summary>Waits until the daemon has programmed the address; throws with the table on timeout.</summary>
    public async Task WaitManaged(string ip, TimeSpan? timeout = null)
    {
        if (!await WaitUntil(t => t.IsManaged(ip), timeout ?? TimeSpan.FromSeconds(15)))
            throw new TimeoutException($"{ip} never appeared in {Name}.managed:\n{ListText()}");
    }

    private static bool Mentions(JsonNode node, string ip)
    {
        switch (node)
        {
            case JsonValue v:
                return v.TryGetValue<string>(out var s) && s == ip;
            case JsonArray a:
                return a.Any(x => x is not null && Mentions(x, ip));
            case JsonObject o:
                if (o["prefix"] is JsonObject p && p["addr"]?.GetValue<string>() == ip) return true;
                return o.Any(kv => kv.Value is not null && Mentions(kv.Value, ip));
            default:
                return false;
        }
    }

    /// <summary>Whether a (non-concatenated) element covers the address: equal, prefix or range.</summary>
    private static bool Covers(JsonNode node, string ip)
    {
        if (node is JsonObject wrapper && wrapper["elem"] is JsonObject inner)
            node = inner["val"] ?? inner;
        switch (node)
        {
            case JsonValue v:
                return v.TryGetValue<string>(out var s) && s == ip;
            case JsonObject o when o["prefix"] is JsonObject p:
                return InPrefix(ip, p["addr"]!.GetValue<string>(), p["len"]!.GetValue<int>());
            case JsonObject o when o["range"] is JsonArray r:
                return InRange(ip, r[0]!.GetValue<string>(), r[1]!.GetValue<string>());
            default:
                return false;
        }
    }

    private static bool InPrefix(string ip, string addr, int len)
    {
        var a = IPAddress.Parse(ip).GetAddressBytes();
        var b = IPAddress.Parse(addr).GetAddressBytes();
        if (a.Length != b.Length) return false;
        for (var i = 0; i < len; i++)
        {
            var mask = 0x80 >> (i % 8);
            if ((a[i / 8] & mask) != (b[i / 8] & mask)) return false;
        }
        return true;
    }

    private static bool InRange(string ip, string lo, string hi)
    {
        var x = IPAddress.Parse(ip).GetAddressBytes();
        var l = IPAddress.Parse(lo).GetAddressBytes();
        var h = IPAddress.Parse(hi).GetAddressBytes();
        if (x.Length != l.Length) return false;
        return Compare(l, x) <= 0 && Compare(x, h) <= 0;

        static int Compare(byte[] p, byte[] q)
        {
            for (var i = 0; i < p.Length; i++) if (p[i] != q[i]) return p[i].CompareTo(q[i]);
            return 0;
        }
    }
}
