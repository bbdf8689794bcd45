using FsCheck;
using FsCheck.Fluent;

namespace WhaleWall.TestSupport;

/// <summary>FsCheck generators of <c>whalewall.rules</c> YAML: mostly well-formed policies over
/// test addresses, and mutations of them (characters deleted, inserted, replaced).</summary>
public static class LabelGen
{
    private static Gen<string> V4 =>
        from a in Gen.Choose(18, 19) from b in Gen.Choose(0, 255) from c in Gen.Choose(0, 255)
        select $"198.{a}.{b}.{c}";

    private static Gen<string> V6 => Gen.Choose(0, 0xffff).Select(n => $"2001:db8::{n:x}");

    private static Gen<string> Address => Gen.Frequency(
        (6, V4),
        (3, V6),
        (3, from a in Gen.Choose(0, 255) from len in Gen.Choose(16, 32) select CidrV4(a, len)),
        (2, from n in Gen.Choose(0, 0xff) from len in Gen.Choose(100, 128) select CidrV6(n, len)),
        (2, from lo in Gen.Choose(1, 100) from span in Gen.Choose(0, 50) select $"198.19.7.{lo}-198.19.7.{Math.Min(255, lo + span)}"),
        (1, Gen.Elements("0.0.0.0/0", "::/0")),
        (1, Gen.Elements("198.19.0.300", "example.com", "198.19.0.1/24", "", "1.2")));

    private static string CidrV4(int third, int len)
    {
        var value = (uint)((198u << 24) | (19u << 16) | ((uint)third << 8));
        var mask = len == 0 ? 0u : uint.MaxValue << (32 - len);
        var net = value & mask;
        return $"{net >> 24}.{(net >> 16) & 255}.{(net >> 8) & 255}.{net & 255}/{len}";
    }

    private static string CidrV6(int n, int len) => len <= 112 ? $"2001:db8::/{len}" : $"2001:db8::{n:x}00/{Math.Max(len, 120)}";

    private static Gen<string> Port => Gen.Frequency(
        (8, Gen.Choose(1, 65535).Select(p => p.ToString())),
        (4, from lo in Gen.Choose(1, 60000) from span in Gen.Choose(0, 5000) select $"{lo}-{Math.Min(65535, lo + span)}"),
        (1, Gen.Elements("0", "65536", "http", "90-80", "-1")));

    private static Gen<string> List(Gen<string> item, int max) =>
        Gen.Choose(1, max).SelectMany(n => item.ListOf(n)).Select(items => "[" + string.Join(", ", items.Select(Quote)) + "]");

    private static string Quote(string s) => s.Length == 0 || s.Contains(':') || s.Contains(' ') ? $"\"{s}\"" : s;

    private static Gen<string> Rule =>
        from proto in Gen.Frequency((4, Gen.Constant<string?>("tcp")), (3, Gen.Constant<string?>("udp")), (1, Gen.Constant<string?>("icmp")),
            (1, Gen.Constant<string?>("icmpv6")), (2, Gen.Constant<string?>(null)), (0, Gen.Constant<string?>("x")))
        from badProto in Gen.Frequency((40, Gen.Constant(false)), (1, Gen.Constant(true)))
        let l4 = proto is "tcp" or "udp"
        let icmp = proto is "icmp" or "icmpv6"
        from ips in Gen.Frequency((1, Gen.Constant<string?>(null)), (3, List(proto == "icmpv6" ? V6 : proto == "icmp" ? V4 : Address, 4).Select(s => (string?)s)))
        from container in ips is null ? Gen.Elements<string?>(null, "db", "web") : Gen.Elements<string?>(null, null, null, null, null, null, null, null, null, "db")
        from dst in Gen.Frequency((l4 ? 1 : 8, Gen.Constant<string?>(null)), (l4 ? 3 : 1, List(Port, 3).Select(s => (string?)s)))
        from src in Gen.Elements<string?>(null, null, null, null, null, null, "[40000-40010]", "[1024-65535]")
        from types in icmp ? Gen.Elements<string?>(null, "[echo-request]", "[8, 0]", "[packet-too-big]") : Gen.Elements<string?>(null, null, null, null, null, null, null, null, "[echo-request]")
        from prefix in Gen.Elements<string?>(null, null, null, null, null, "\"web \"", "\"web \"", "\"" + new string('x', 127) + "\"", "\"" + new string('y', 128) + "\"")
            .Select(p => p)
        from verdict in Gen.Elements<string?>(null, null, null, null, null, null, null, "{ chain: audit }", "{ queue: 2 }", "{ queue: 1, input_est_queue: 2, output_est_queue: 3 }", "{ chain: audit }", "{ chain: forward }")
        from unknown in Gen.Frequency((30, Gen.Constant<string?>(null)), (1, Gen.Constant<string?>("colour: red")))
        select Render(("proto", badProto ? "sctp" : proto), ("ips", ips), ("container", container), ("dst_ports", dst), ("src_ports", src),
            ("icmp_types", types), ("log_prefix", prefix), ("verdict", verdict), (unknown is null ? null : "colour", unknown is null ? null : "red"));

    private static string Render(params (string? Key, string? Value)[] fields)
    {
        var present = fields.Where(f => f.Key is not null && f.Value is not null).ToList();
        if (present.Count == 0) return "  - {}\n";
        return "  - " + string.Join("\n    ", present.Select(f => $"{f.Key}: {f.Value}")) + "\n";
    }

    private static Gen<string> Mapped =>
        from local in Gen.Elements("", "  localhost: { allow: true }\n", "  localhost: { allow: true, log_prefix: \"lh \" }\n", "  localhost: { allow: false }\n", "  localhost: { allow: maybe }\n")
        from external in Gen.Elements("", "  external: { allow: true }\n", "  external: { allow: true, ips: [198.19.0.20, \"2001:db8::20\"] }\n", "  external: { allowed: true, ip: 198.19.0.0/24 }\n")
        select local.Length + external.Length == 0 ? "" : "mapped_ports:\n" + local + external;

    /// <summary>A policy in the shape operators write, valid or not.</summary>
    public static Gen<string> Policy =>
        from n in Gen.Choose(0, 4)
        from rules in Rule.ListOf(n)
        from mapped in Mapped
        select (n == 0 ? "" : "output:\n" + string.Concat(rules)) + mapped;

    /// <summary>A policy with random edits: the parser must survive anything.</summary>
    public static Gen<string> Mutated =>
        from text in Policy
        from edits in Gen.Choose(1, 6)
        from seed in Gen.Choose(0, int.MaxValue)
        select Mutate(text, edits, new Random(seed));

    private static string Mutate(string text, int edits, Random random)
    {
        const string alphabet = "-:[]{},\"'#&*!|>% \n\t0123456789abcxyz./\\\u00e9\u0000";
        var chars = text.ToList();
        for (var i = 0; i < edits; i++)
        {
            var at = chars.Count == 0 ? 0 : random.Next(chars.Count);
            switch (random.Next(3))
            {
                case 0 when chars.Count > 0: chars.RemoveAt(at); break;
                case 1: chars.Insert(at, alphabet[random.Next(alphabet.Length)]); break;
                default: if (chars.Count > 0) chars[at] = alphabet[random.Next(alphabet.Length)]; break;
            }
        }
        return new string(chars.ToArray());
    }

    public static Gen<string> Any => Gen.Frequency((3, Policy), (1, Mutated));

    /// <summary>A dockerwall outbound list (<c>dockerwall.outbound</c>, <c>DEFAULT_OUTBOUND</c>):
    /// addresses, CIDRs, names, <c>_dns_</c>, and now and then an entry the daemon refuses.</summary>
    public static Gen<string> Outbound =>
        from n in Gen.Choose(0, 4)
        from entries in Gen.Frequency(
            (3, Gen.Constant("_dns_")),
            (4, V4),
            (2, V6),
            (2, Gen.Elements("198.19.1.0/24", "198.19.2.1-198.19.2.9", "2001:db8:1::/64")),
            (3, Gen.Elements("api.test.example", "db.test.example.", "Mixed.Test.Example")),
            (1, Gen.Elements("*.example.com", "nope", "198.19.0.300", "a b", "10.0.0.1/8", "")))
            .ListOf(n)
        select string.Join(",", entries);

    /// <summary>A container's label set as operators write it: <c>whalewall.enabled</c> in its
    /// spellings (or none), <c>whalewall.rules</c> (valid or mutated), <c>dockerwall.outbound</c>,
    /// and labels WhaleWall ignores.</summary>
    public static Gen<IReadOnlyDictionary<string, string>> LabelSet =>
        from enabled in Gen.Elements<string?>(null, null, "true", "true", "true", "false", "TRUE", " true ", "yes", "")
        from rules in Gen.Frequency((2, Gen.Constant<string?>(null)), (3, Any.Select(r => (string?)r)))
        from outbound in Gen.Frequency((3, Gen.Constant<string?>(null)), (2, Outbound.Select(o => (string?)o)))
        from other in Gen.Elements<string?>(null, "x", "dockerwall.outbound.extra")
        select (IReadOnlyDictionary<string, string>)new[]
            {
                ("whalewall.enabled", enabled), ("whalewall.rules", rules), ("dockerwall.outbound", outbound), ("other.label", other),
            }
            .Where(kv => kv.Item2 is not null)
            .ToDictionary(kv => kv.Item1, kv => kv.Item2!);

    // ------------------------------------------------------------------ hostile shapes

    /// <summary>Nesting far past what the schema needs: flow lists and mappings (balanced or
    /// not, up to the 64 KiB label limit), block mappings and block lists, or a mix.</summary>
    public static Gen<string> DeepNesting =>
        from depth in Gen.Frequency((3, Gen.Choose(5, 40)), (2, Gen.Choose(40, 2000)), (1, Gen.Choose(2000, 32000)))
        from style in Gen.Choose(0, 4)
        from balanced in Gen.Elements(true, true, false)
        from at in Gen.Elements("output: ", "output:\n  - ips: ", "mapped_ports:\n  external: ", "")
        select Cap(style switch
        {
            0 => at + new string('[', depth) + (balanced ? new string(']', depth) : ""),
            1 => at + string.Concat(Enumerable.Repeat("{a: ", depth)) + "x" + (balanced ? new string('}', depth) : ""),
            2 => at + string.Concat(Enumerable.Range(0, depth).Select(i => i % 2 == 0 ? "[" : "{k: ")) +
                 (balanced ? string.Concat(Enumerable.Range(0, depth).Reverse().Select(i => i % 2 == 0 ? "]" : "}")) : ""),
            3 => Lines(Math.Min(depth, 300), i => new string(' ', i) + "k:") + new string(' ', Math.Min(depth, 300)) + "v\n",
            _ => Lines(Math.Min(depth, 300), i => new string(' ', 2 * i) + "-") + new string(' ', 2 * Math.Min(depth, 300)) + "x\n",
        });

    /// <summary>At most the label limit (64 KiB).</summary>
    private static string Cap(string text) => text.Length > 64 * 1024 ? text[..(64 * 1024)] : text;

    /// <summary>Anchor graphs: a chain where each level aliases the one below
    /// <c>fanout</c> times (billion laughs: fanout^levels nodes once expanded), used as a
    /// value, as a mapping key, inside a key, in a cycle, forward, or through merge keys.</summary>
    public static Gen<string> AliasGraphs =>
        from levels in Gen.Choose(1, 64)
        from fanout in Gen.Choose(1, 6)
        from use in Gen.Choose(0, 7)
        select AliasGraph(levels, fanout, use);

    private static string AliasGraph(int levels, int fanout, int use)
    {
        var chain = "x-anchors:\n  a0: &a0 [198.19.0.1, 198.19.0.2]\n" + string.Concat(Enumerable.Range(1, levels).Select(n =>
            $"  a{n}: &a{n} [{string.Join(", ", Enumerable.Repeat($"*a{n - 1}", fanout))}]\n"));
        var top = $"*a{levels}";
        return use switch
        {
            0 => chain + $"output:\n  - ips: {top}\n",                                    // as a value
            1 => chain + $"? {top}\n: 1\n",                                              // as a key
            2 => chain + $"? [{top}]\n: 1\n",                                            // inside a key
            3 => chain + $"output: [{{ips: [198.19.0.1], proto: tcp, dst_ports: {top}}}]\n", // in a port list
            4 => $"output: &loop [{{ips: *loop}}]\n",                                     // a cycle
            5 => $"output:\n  - ips: *later\nx: &later [198.19.0.1]\n",                   // forward
            6 => chain + $"output:\n  - <<: {{ips: {top}}}\n    proto: tcp\n",             // merge key
            _ => chain + "output:\n" + string.Concat(Enumerable.Range(0, Math.Min(256, 1 << Math.Min(levels, 8))).Select(_ => $"  - ips: {top}\n")),
        };
    }

    /// <summary>Rules whose lists multiply: up to 256 destinations x source ports x destination
    /// ports (or ICMP types), in one or many rules, with or without overlaps.</summary>
    public static Gen<string> Multiplicative =>
        from rules in Gen.Choose(1, 8)
        from text in (
            from ips in Size
            from sports in Gen.Frequency((2, Gen.Constant(0)), (3, Size))
            from dports in Gen.Frequency((1, Gen.Constant(0)), (3, Size))
            from overlap in Gen.Elements(false, true)
            from icmp in Gen.Frequency((5, Gen.Constant(false)), (1, Gen.Constant(true)))
            select icmp
                ? $"  - ips: [{string.Join(", ", Enumerable.Range(0, ips).Select(i => $"198.19.{i / 256}.{i % 256}"))}]\n    proto: icmp\n" +
                  $"    icmp_types: [{string.Join(", ", Enumerable.Range(0, Math.Max(1, sports)))}]\n"
                : $"  - ips: [{string.Join(", ", Enumerable.Range(0, ips).Select(i => overlap ? $"198.19.0.0-198.19.{i}.255" : $"198.19.{i / 256}.{i % 256}"))}]\n    proto: tcp\n" +
                  (sports == 0 ? "" : $"    src_ports: [{string.Join(", ", Enumerable.Range(0, sports).Select(p => overlap ? $"{1000 + p}-{3000 + p}" : $"{1000 + p}"))}]\n") +
                  (dports == 0 ? "" : $"    dst_ports: [{string.Join(", ", Enumerable.Range(0, dports).Select(p => overlap ? $"{10 + p}-{700 - p}" : $"{4000 + p}"))}]\n")
        ).ListOf(rules)
        select Cap("output:\n" + string.Concat(text));

    /// <summary>A list length: mostly small (so that some policies fit the element limit), up to 256.</summary>
    private static Gen<int> Size => Gen.Frequency((4, Gen.Choose(1, 8)), (3, Gen.Choose(8, 64)), (2, Gen.Choose(64, 256)), (1, Gen.Constant(256)));

    /// <summary>Any of the hostile shapes, sometimes mutated.</summary>
    public static Gen<string> Hostile =>
        from shape in Gen.Frequency((2, DeepNesting), (2, AliasGraphs), (2, Multiplicative))
        from mutate in Gen.Frequency((4, Gen.Constant(false)), (1, Gen.Constant(true)))
        from seed in Gen.Choose(0, int.MaxValue)
        select mutate ? Mutate(shape, 3, new Random(seed)) : shape;

    private static string Lines(int n, Func<int, string> line) => string.Concat(Enumerable.Range(0, n).Select(i => line(i) + "\n"));
}
