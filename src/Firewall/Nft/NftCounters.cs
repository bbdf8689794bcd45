using System.Net;
using System.Text.Json;

namespace WhaleWall.Firewall.Nft;

/// <summary>One element's counter from a <c>list table</c>: whose it is (the container's own
/// address in the element), which way and what verdict it counts.</summary>
/// <param name="Element">The set name and the element's value as listed: identifies the element
/// across scrapes (a re-created element starts again from zero).</param>
public readonly record struct ElementCounter(string Element, IPAddress Container, bool Egress, CountedVerdict Verdict, ulong Packets, ulong Bytes)
{
    public bool Accepted => Verdict == CountedVerdict.Accept;
}

/// <summary>What a counted element counts: accepted new flows, drops, or audit mode's would-be drops (which passed).</summary>
public enum CountedVerdict { Accept, Drop, AuditDrop }

public static class CountedVerdicts
{
    /// <summary>The metrics' verdict label.</summary>
    public static string Label(this CountedVerdict v) => v switch
    {
        CountedVerdict.Accept => "accept",
        CountedVerdict.Drop => "drop",
        _ => "audit_drop",
    };
}

/// <summary>Reads the per-element counters of WhaleWall's sets from what libnftables prints
/// for <c>list table</c> (JSON). Pure.</summary>
public static class NftCounters
{
    /// <summary>For each counted set: direction, verdict, and which field holds the container's address.</summary>
    private const CountedVerdict A = CountedVerdict.Accept, D = CountedVerdict.Drop, Audit = CountedVerdict.AuditDrop;

    private static readonly Dictionary<string, (bool Egress, CountedVerdict Verdict, int Field)> Sets = new Dictionary<string, (bool Egress, CountedVerdict Verdict, int Field)>
    {
        ["out4"] = (true, A, 0), ["out6"] = (true, A, 0),
        ["outh4"] = (true, A, 0), ["outh6"] = (true, A, 0),
        ["peer4"] = (false, A, 1), ["peer6"] = (false, A, 1),
        ["pub4"] = (false, A, 1), ["pub6"] = (false, A, 1),
        ["in4"] = (false, A, 1), ["in6"] = (false, A, 1),
        ["local4"] = (false, A, 0), ["local6"] = (false, A, 0),
        ["dropout4"] = (true, D, 0), ["dropout6"] = (true, D, 0),
        ["dropin4"] = (false, D, 0), ["dropin6"] = (false, D, 0),
        ["auditout4"] = (true, Audit, 0), ["auditout6"] = (true, Audit, 0),
        ["auditin4"] = (false, Audit, 0), ["auditin6"] = (false, Audit, 0),
    }.Physical();

    /// <summary>Keyed by the physical sets (<see cref="NftPlacement"/>): the exact twins and the
    /// shards count like their logical set, the owner's address in the same field.</summary>
    private static Dictionary<string, (bool Egress, CountedVerdict Verdict, int Field)> Physical(this Dictionary<string, (bool Egress, CountedVerdict Verdict, int Field)> sets) =>
        sets.SelectMany(p => NftPlacement.PhysicalSets(p.Key).Select(physical => (physical, p.Value)))
            .ToDictionary(p => p.physical, p => p.Value, StringComparer.Ordinal);

    /// <summary>The sets whose counters belong to containers. Listing them one by one costs
    /// less than listing the whole table (CounterTests.Scrape_cost_*).</summary>
    public static IEnumerable<string> CountedSets => Sets.Keys;

    public static List<ElementCounter> Read(string json) => Read(json, new List<ElementCounter>());

    /// <summary>Adds the counters found in <paramref name="json"/> (a listing of the table or of
    /// one set) to <paramref name="result"/>.</summary>
    public static List<ElementCounter> Read(string json, List<ElementCounter> result)
    {
        using var doc = JsonDocument.Parse(json);
        if (!doc.RootElement.TryGetProperty("nftables", out var items)) return result;
        foreach (var item in items.EnumerateArray())
        {
            if (!item.TryGetProperty("set", out var set) || !set.TryGetProperty("name", out var nameProp)) continue;
            var name = nameProp.GetString()!;
            if (!Sets.TryGetValue(name, out var shape) || !set.TryGetProperty("elem", out var elems)) continue;
            foreach (var e in elems.EnumerateArray())
            {
                if (!e.TryGetProperty("elem", out var elem) || !elem.TryGetProperty("val", out var val) ||
                    !elem.TryGetProperty("counter", out var counter)) continue;
                var field = val.ValueKind == JsonValueKind.Object && val.TryGetProperty("concat", out var concat)
                    ? (concat.GetArrayLength() > shape.Field ? concat[shape.Field] : default)
                    : val;
                if (SingleAddress(field) is not { } address) continue;
                result.Add(new ElementCounter(name + " " + val.GetRawText(), address, shape.Egress, shape.Verdict,
                    counter.GetProperty("packets").GetUInt64(), counter.GetProperty("bytes").GetUInt64()));
            }
        }
        return result;
    }

    /// <summary>A single address as libnftables prints it: a literal, a full-length prefix or a
    /// one-address range. Anything wider is not one container's.</summary>
    private static IPAddress? SingleAddress(JsonElement field)
    {
        switch (field.ValueKind)
        {
            case JsonValueKind.String:
                return IPAddress.TryParse(field.GetString(), out var a) ? a : null;
            case JsonValueKind.Object when field.TryGetProperty("prefix", out var prefix):
                if (!IPAddress.TryParse(prefix.GetProperty("addr").GetString(), out var p)) return null;
                var full = p.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128;
                return prefix.GetProperty("len").GetInt32() == full ? p : null;
            case JsonValueKind.Object when field.TryGetProperty("range", out var range):
                var lo = range[0].GetString();
                return lo is not null && lo == range[1].GetString() && IPAddress.TryParse(lo, out var r) ? r : null;
            default:
                return null;
        }
    }
}
