using System.Text.Json.Nodes;

namespace WhaleWall.TestSupport;

/// <summary>Compares the set elements of two WhaleWall tables, ignoring counters: "the kernel
/// holds what a fresh start would build".</summary>
public static class TableCompare
{
    /// <summary>Set name -> its elements as canonical text (counters removed).</summary>
    public static SortedDictionary<string, SortedSet<string>> Elements(KernelTable table)
    {
        var result = new SortedDictionary<string, SortedSet<string>>(StringComparer.Ordinal);
        foreach (var (set, elems) in table.Sets())
            result[set] = new SortedSet<string>(elems.Select(e => Canonical(e).ToJsonString()), StringComparer.Ordinal);
        return result;
    }

    /// <summary>Empty when equal; otherwise one line per differing element.</summary>
    public static List<string> Diff(SortedDictionary<string, SortedSet<string>> a, SortedDictionary<string, SortedSet<string>> b, string aName = "a", string bName = "b")
    {
        var lines = new List<string>();
        foreach (var set in a.Keys.Union(b.Keys).Order(StringComparer.Ordinal))
        {
            var x = a.GetValueOrDefault(set) ?? [];
            var y = b.GetValueOrDefault(set) ?? [];
            lines.AddRange(x.Except(y).Select(e => $"{set}: only in {aName}: {e}"));
            lines.AddRange(y.Except(x).Select(e => $"{set}: only in {bName}: {e}"));
        }
        return lines;
    }

    public static int Count(SortedDictionary<string, SortedSet<string>> t) => t.Values.Sum(s => s.Count);

    private static JsonNode Canonical(JsonNode node)
    {
        var copy = node.DeepClone();
        // {"elem": {"val": X, "counter": {...}}} -> X
        if (copy is JsonObject o && o["elem"] is JsonObject elem && elem["val"] is { } val) copy = val.DeepClone();
        Strip(copy);
        return copy;
    }

    private static void Strip(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject o:
                o.Remove("counter");
                foreach (var kv in o.ToList()) Strip(kv.Value);
                break;
            case JsonArray a:
                for (var i = 0; i < a.Count; i++)
                {
                    if (a[i] is JsonObject e && e["elem"] is JsonObject inner && inner["val"] is { } v)
                        a[i] = v.DeepClone();
                    Strip(a[i]);
                }
                break;
        }
    }
}
