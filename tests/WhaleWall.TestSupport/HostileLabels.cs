namespace WhaleWall.TestSupport;

/// <summary><c>whalewall.rules</c> values written to hurt the daemon (issue 12, point 2), shared
/// by the unit, fuzz and end-to-end tests. Each stays under the 64 KiB label limit.</summary>
public static class HostileLabels
{
    /// <summary><c>output: </c> + 30,000 <c>[</c> + 30,000 <c>]</c> (60 KB): YamlDotNet's loader
    /// recursed once per level and overflowed the stack (the process aborted).</summary>
    public static string DeepNesting(int levels = 30_000) => "output: " + new string('[', levels) + new string(']', levels);

    /// <summary>The same depth as a chain of block mappings.</summary>
    public static string DeepBlockMappings(int levels) =>
        string.Concat(Enumerable.Range(0, levels).Select(i => new string(' ', i) + "k:\n")) + new string(' ', levels) + "v";

    /// <summary><c>a0: &amp;a0 [x, x]</c>, <c>aN: &amp;aN [*aN-1, *aN-1]</c> up to <paramref name="levels"/>,
    /// then <c>? *aN : 1</c>: hashing that key took 2^60 steps (the thread never returned).</summary>
    public static string AliasGraphAsKey(int levels = 60) =>
        AnchorChain(levels) + $"? *a{levels} : 1\n";

    /// <summary>The anchor chain used as a value (billion laughs): 2^levels nodes once expanded.</summary>
    public static string BillionLaughs(int levels = 60) =>
        Indented(AnchorChain(levels)) + "output:\n  - ips: *a" + levels + "\n";

    /// <summary>A flow list holding the anchor chain's top as a key inside a list item: the
    /// key is a sequence containing aliases, not an alias itself.</summary>
    public static string AliasGraphInsideKey(int levels = 60) => AnchorChain(levels) + $"? [*a{levels}] : 1\n";

    /// <summary>A sequence that contains an alias to itself (YamlDotNet binds it: a cycle).</summary>
    public const string SelfReference = "output: &loop [*loop]\n";

    private static string AnchorChain(int levels) =>
        "a0: &a0 [x, x]\n" + string.Concat(Enumerable.Range(1, levels).Select(n => $"a{n}: &a{n} [*a{n - 1}, *a{n - 1}]\n"));

    private static string Indented(string text) => "x-anchors:\n" + string.Concat(text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => "  " + l + "\n"));

    /// <summary><c>output: [{ips: [256 addresses], proto: tcp, src_ports: [256], dst_ports: [256]}]</c>
    /// (6 KB): 16.7 million grants were built before the element limit was checked (5.8 GB, 17 s).</summary>
    public static string Multiplicative(int n = 256) =>
        $"output: [{{ips: [{string.Join(", ", Enumerable.Range(0, n).Select(i => $"198.19.{i / 256}.{i % 256}"))}], proto: tcp, " +
        $"src_ports: [{string.Join(", ", Enumerable.Range(0, n).Select(i => 1000 + i))}], " +
        $"dst_ports: [{string.Join(", ", Enumerable.Range(0, n).Select(i => 2000 + i))}]}}]";

    /// <summary>The three shapes, each next to a harmless rule allowing tcp to
    /// <paramref name="server"/>:<paramref name="port"/> (still under 64 KiB): a daemon that
    /// ignored the hostile part and enforced the rest would let that connection through.</summary>
    public static IReadOnlyDictionary<string, string> ReproducedWithAnAllowedRule(string server, int port)
    {
        var allowed = $"{{ips: [{server}], proto: tcp, dst_ports: [{port}]}}";
        var multiplicative = Multiplicative();
        return new Dictionary<string, string>
        {
            ["deep-nesting"] = $"output: [{allowed}, " + new string('[', 29_980) + new string(']', 29_980) + "]",
            ["alias-graph-as-key"] = AnchorChain(60) + $"output: [{allowed}]\n? *a60 : 1\n",
            ["multiplicative"] = $"output: [{allowed}, " + multiplicative["output: [".Length..],
        };
    }

    /// <summary>The three shapes of the issue, by name.</summary>
    public static IReadOnlyDictionary<string, string> Reproduced => new Dictionary<string, string>
    {
        ["deep-nesting"] = DeepNesting(),
        ["alias-graph-as-key"] = AliasGraphAsKey(),
        ["multiplicative"] = Multiplicative(),
    };
}
