using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Names;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Firewall.Flows;

/// <summary>
/// The <c>whalewall.rules</c> that allow exactly what an owner was seen doing, and nothing
/// broader: peers as <c>container:</c>, names as <c>hosts:</c>, anything else as <c>ips:</c> of
/// single addresses; per destination and protocol only the ports seen, merged into a range
/// only where they are contiguous. With the DNS proxy's grammar, three or more sibling names
/// (same parent, at least two labels deep) with the same ports become <c>*.parent</c>.
/// Pure; the text parses back (<see cref="LabelParser"/>) into a policy allowing those flows.
/// </summary>
public static class Suggestion
{
    public const int SiblingsForWildcard = 3;

    public static string Rules(IEnumerable<FlowKey> flows, bool wildcards)
    {
        var byTarget = flows
            .GroupBy(f => (f.Kind, f.Destination, f.Proto))
            .Select(g => (g.Key.Kind, g.Key.Destination, g.Key.Proto, Ports: g.Select(f => f.Port).Distinct().Order().ToImmutableArray()))
            .ToList();
        var rules = new List<string>();

        foreach (var t in byTarget.Where(t => t.Kind == DestinationKind.Container).OrderBy(t => t.Destination, StringComparer.Ordinal).ThenBy(t => t.Proto))
            rules.Add(Rule("container", [t.Destination], t.Proto, t.Ports));

        // names and addresses with the same protocol and ports share a rule
        foreach (var kind in new[] { DestinationKind.Host, DestinationKind.Address })
        {
            var groups = byTarget.Where(t => t.Kind == kind)
                .GroupBy(t => (t.Proto, Ports: string.Join(",", t.Ports)))
                .OrderBy(g => g.Key.Proto).ThenBy(g => g.Key.Ports, StringComparer.Ordinal);
            foreach (var g in groups)
            {
                var targets = g.Select(t => t.Destination).Distinct().ToList();
                if (kind == DestinationKind.Host && wildcards) targets = Siblings(targets);
                targets.Sort(StringComparer.Ordinal);
                rules.Add(Rule(kind == DestinationKind.Host ? "hosts" : "ips", targets, g.Key.Proto, g.First().Ports));
            }
        }
        if (rules.Count == 0) return "output: []\n";
        var text = new StringBuilder("output:\n");
        foreach (var r in rules) text.Append(r);
        return text.ToString();
    }

    /// <summary>Names under one parent, three or more of them, become <c>*.parent</c> (one label,
    /// exactly the DNS proxy's grammar); others stay as they are.</summary>
    private static List<string> Siblings(List<string> names)
    {
        var result = new List<string>();
        foreach (var group in names.GroupBy(Parent))
        {
            if (group.Key is { } parent && parent.Count(c => c == '.') >= 1 && group.Count() >= SiblingsForWildcard)
                result.Add("*." + parent);
            else result.AddRange(group);
        }
        return result;
    }

    private static string? Parent(string name)
    {
        var dot = name.IndexOf('.');
        return dot < 0 || name.StartsWith('*') ? null : name[(dot + 1)..];
    }

    private static string Rule(string key, IReadOnlyList<string> targets, L4Proto proto, ImmutableArray<ushort> ports)
    {
        var w = new StringBuilder();
        w.Append(key == "container" ? $"  - container: {Quote(targets[0])}\n" : $"  - {key}: [{string.Join(", ", targets.Select(Quote))}]\n");
        w.Append($"    proto: {ProtoName(proto)}\n");
        if (proto is L4Proto.Icmp or L4Proto.Icmpv6)
            w.Append($"    icmp_types: [{string.Join(", ", ports.Select(p => IcmpSyntax.Name((byte)p, proto == L4Proto.Icmpv6)))}]\n");
        else
            w.Append($"    dst_ports: [{string.Join(", ", Ranges(ports))}]\n");
        return w.ToString();
    }

    /// <summary>Sorted ports as single ports and ranges of contiguous ones (80, 81, 82, 443 ->
    /// 80-82, 443).</summary>
    public static IEnumerable<string> Ranges(ImmutableArray<ushort> sorted)
    {
        var i = 0;
        while (i < sorted.Length)
        {
            var j = i;
            while (j + 1 < sorted.Length && sorted[j + 1] == sorted[j] + 1) j++;
            yield return i == j ? sorted[i].ToString(CultureInfo.InvariantCulture) : $"{sorted[i]}-{sorted[j]}";
            i = j + 1;
        }
    }

    private static string ProtoName(L4Proto proto) => proto switch
    {
        L4Proto.Tcp => "tcp",
        L4Proto.Udp => "udp",
        L4Proto.Icmp => "icmp",
        _ => "icmpv6",
    };

    /// <summary>Plain names and addresses as they are; anything else (a container name with odd
    /// characters, an IPv6 address) double-quoted, escaped.</summary>
    private static string Quote(string text) =>
        text.Length > 0 && text.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_') && !char.IsAsciiDigit(text[0]) && text[0] != '-'
            || System.Net.IPAddress.TryParse(text, out var a) && a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork
            ? text
            : "\"" + text.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
}
