using System.Collections.Immutable;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;
using YamlDotNet.RepresentationModel;

namespace WhaleWall.Firewall.Labels;

/// <summary>Walks the YAML tree of <c>whalewall.rules</c> into policy records, reporting
/// every problem with its path (<c>output[2].dst_ports[0]</c>) and line.</summary>
internal sealed class RulesReader(ErrorSink errors, bool proxy = false)
{
    private static readonly string[] RootKeys = ["output", "mapped_ports"];
    private static readonly string[] RuleKeys =
        ["log_prefix", "network", "ips", "ip", "container", "hosts", "proto", "src_ports", "dst_ports", "port", "icmp_types", "verdict"];
    private static readonly string[] MappedKeys = ["localhost", "external"];
    private static readonly string[] LocalhostKeys = ["allow", "allowed", "log_prefix", "verdict"];
    private static readonly string[] ExternalKeys = ["allow", "allowed", "ips", "ip", "log_prefix", "verdict"];
    private static readonly string[] VerdictKeys = ["chain", "queue", "input_est_queue", "output_est_queue"];

    public ContainerPolicy Root(YamlNode root)
    {
        var map = Mapping(root, "");
        if (map is null) return ContainerPolicy.DropAll;
        CheckKeys(map, "", RootKeys);

        var output = ImmutableArray<OutputRule>.Empty;
        long size = 0;
        if (Get(map, "output") is { } outputNode)
        {
            // `output: []` is no rule: nothing allowed, unlike an empty list inside a rule
            var rules = Sequence(outputNode, "output", LabelKeys.MaxRules, allowEmpty: true);
            var parsed = ImmutableArray.CreateBuilder<OutputRule>();
            for (var i = 0; i < rules.Count; i++)
            {
                if (Rule(rules[i], $"output[{i}]") is not { } rule) continue;
                parsed.Add(rule);
                size = PolicySize.Plus(size, Size(rule, rules[i], $"output[{i}]"));
            }
            output = parsed.ToImmutable();
        }

        var mapped = Get(map, "mapped_ports") is { } mappedNode
            ? MappedPorts(mappedNode, "mapped_ports")
            : MappedPortsPolicy.Closed;
        size = PolicySize.Plus(size, PolicySize.PerAddress(mapped));
        if (size > PolicySize.MaxElements && errors.Count == 0)
            errors.Add("", root, $"the rules together expand to {size} set elements for a container with one IPv4 and one IPv6 address, " +
                $"more than the limit of {PolicySize.MaxElements}");
        return new ContainerPolicy(output, mapped);
    }

    /// <summary>What one rule expands to, counted before anything is built; a rule past the
    /// element limit is an error of its own, with its path.</summary>
    private long Size(OutputRule rule, YamlNode node, string path)
    {
        var size = PolicySize.PerAddress(rule, out var detail);
        if (size > PolicySize.MaxElements)
            errors.Add(path, node, $"this rule expands to {size} set elements per container address ({detail}), " +
                $"more than the limit of {PolicySize.MaxElements}; split it or use ranges/CIDRs");
        return size;
    }

    private OutputRule? Rule(YamlNode node, string path)
    {
        var map = Mapping(node, path);
        if (map is null) return null;
        CheckKeys(map, path, RuleKeys);
        var before = errors.Count;

        var network = Get(map, "network") is { } n ? Name(n, path + ".network") : null;
        var container = Get(map, "container") is { } c ? Name(c, path + ".container") : null;
        var ips = AddressList(map, path, "ips", "ip");
        var hosts = Get(map, "hosts") is { } h ? Hosts(h, path + ".hosts") : [];
        L4Proto? proto = Get(map, "proto") is { } p ? Proto(p, path + ".proto") : null;
        var srcPorts = Get(map, "src_ports") is { } sp ? Ports(sp, path + ".src_ports") : [];
        var dstPorts = PortList(map, path);
        var icmpTypes = Get(map, "icmp_types") is { } it ? IcmpTypes(it, path + ".icmp_types", proto) : [];
        var action = Action(map, path);

        var destinations = new[] { Get(map, "ips") ?? Get(map, "ip"), Get(map, "container"), Get(map, "hosts") }.Count(d => d is not null);
        if (destinations > 1)
            errors.Add(path, node, "a rule takes one of `ips`, `container` or `hosts`");
        if (Get(map, "hosts") is not null && action is not null)
            errors.Add(path, node, "`log_prefix` and `verdict` are not supported with `hosts` in this version");
        var isIcmp = proto is L4Proto.Icmp or L4Proto.Icmpv6;
        foreach (var key in new[] { "src_ports", "dst_ports", "port" })
        {
            if (Get(map, key) is not { } portsNode) continue;
            if (isIcmp) errors.Add($"{path}.{key}", portsNode, "ICMP has no ports; use `icmp_types`");
            else if (proto is null && Get(map, "proto") is null) errors.Add($"{path}.{key}", portsNode, "ports need `proto` (tcp or udp)");
        }
        // without a proto the rule would allow every protocol and port: the types are never ignored
        if (Get(map, "icmp_types") is { } typesNode && !isIcmp && (proto is not null || Get(map, "proto") is null))
            errors.Add(path + ".icmp_types", typesNode, "`icmp_types` needs `proto: icmp` or `proto: icmpv6`");
        if (proto == L4Proto.Icmp && ips.Any(i => i.Family == IpFamily.V6))
            errors.Add(path + ".ips", node, "`proto: icmp` is IPv4; use `proto: icmpv6` for IPv6 addresses");
        if (proto == L4Proto.Icmpv6 && ips.Any(i => i.Family == IpFamily.V4))
            errors.Add(path + ".ips", node, "`proto: icmpv6` is IPv6; use `proto: icmp` for IPv4 addresses");
        if (map.Children.Count == 0)
            errors.Add(path, node, "empty rule; to allow everything say `ips: [0.0.0.0/0, ::/0]`");

        return errors.Count == before
            ? new OutputRule(network, ips, container, proto, srcPorts, dstPorts, icmpTypes, action, Hosts: hosts,
                Source: new RuleSource(LabelKeys.Rules, path, (int)node.Start.Line))
            : null;
    }

    private MappedPortsPolicy MappedPorts(YamlNode node, string path)
    {
        var map = Mapping(node, path);
        if (map is null) return MappedPortsPolicy.Closed;
        CheckKeys(map, path, MappedKeys);
        return new MappedPortsPolicy(
            Get(map, "localhost") is { } l ? Mapped(l, path + ".localhost", LocalhostKeys) : MappedRule.Closed,
            Get(map, "external") is { } e ? Mapped(e, path + ".external", ExternalKeys) : MappedRule.Closed);
    }

    private MappedRule Mapped(YamlNode node, string path, string[] keys)
    {
        if (Mapping(node, path) is not { } map) return MappedRule.Closed;
        CheckKeys(map, path, keys);
        if (Get(map, "allow") is not null && Get(map, "allowed") is not null)
            errors.Add(path, node, "`allow` and `allowed` mean the same; give one");
        var allow = (Get(map, "allow") ?? Get(map, "allowed")) is { } a && Bool(a, path + ".allow");
        var ips = keys.Contains("ips") ? AddressList(map, path, "ips", "ip") : [];
        return new MappedRule(allow, ips, Action(map, path), new RuleSource(LabelKeys.Rules, path, (int)node.Start.Line));
    }

    private RuleAction? Action(YamlMappingNode map, string path)
    {
        var prefix = Get(map, "log_prefix") is { } lp ? LogPrefix(lp, path + ".log_prefix") : null;
        var verdict = Get(map, "verdict") is { } v ? Verdict(v, path + ".verdict") : null;
        return RuleAction.Of(prefix, verdict);
    }

    /// <summary>The kernel keeps at most 127 bytes of a log prefix; whalewall passed longer
    /// ones through and the kernel refused the rule, leaving the container unfiltered.</summary>
    private string? LogPrefix(YamlNode node, string path)
    {
        var text = node is YamlScalarNode { Value: { } v } ? v : Scalar(node, path);
        if (text is null) return null;
        var bytes = System.Text.Encoding.UTF8.GetByteCount(text);
        if (bytes > LabelKeys.MaxLogPrefixBytes)
            return Fail<string?>(path, node, $"log prefix is {bytes} bytes; the kernel allows at most {LabelKeys.MaxLogPrefixBytes}");
        if (text.Length == 0 || text.Any(ch => ch < 0x20 || ch > 0x7e))
            return Fail<string?>(path, node, "log prefix must be 1-127 printable ASCII characters");
        return text;
    }

    private RuleVerdict? Verdict(YamlNode node, string path)
    {
        if (Mapping(node, path) is not { } map) return null;
        CheckKeys(map, path, VerdictKeys);
        var before = errors.Count;
        var chain = Get(map, "chain") is { } c ? ChainName(c, path + ".chain") : null;
        ushort? Queue(string key, int max) => Get(map, key) is { } q ? QueueNumber(q, $"{path}.{key}", max) : null;
        var queue = Queue("queue", ushort.MaxValue);
        var inEst = Queue("input_est_queue", PolicySize.MaxEstQueue);
        var outEst = Queue("output_est_queue", PolicySize.MaxEstQueue);
        if (chain is not null && queue is not null)
            errors.Add(path, node, "give either `chain` or `queue`, not both");
        if ((inEst is null) != (outEst is null) && errors.Count == before)
            errors.Add(path, node, "`input_est_queue` and `output_est_queue` go together");
        if (map.Children.Count == 0)
            errors.Add(path, node, "empty verdict");
        return errors.Count == before ? new RuleVerdict(chain, queue, inEst, outEst) : null;
    }

    private string? ChainName(YamlNode node, string path)
    {
        var name = Scalar(node, path);
        if (name is null) return null;
        if (!System.Text.RegularExpressions.Regex.IsMatch(name, "^[A-Za-z][A-Za-z0-9_-]{0,63}$"))
            return Fail<string?>(path, node, "chain name must be a letter followed by up to 63 letters, digits, _ or -");
        if (NftLayout.IsOwnChain(name))
            return Fail<string?>(path, node, $"`{LabelParser.Truncate(name)}` is one of WhaleWall's own chain names " +
                $"({string.Join(", ", NftLayout.FixedChains)}, egress4_0-{NftPlacement.ShardMask}, egress6_0-{NftPlacement.ShardMask}, " +
                $"or starting with {string.Join(" or ", NftLayout.OwnChainPrefixes)})");
        return name;
    }

    /// <summary>An NFQUEUE number, 0-<paramref name="max"/>: 65535 for `queue`; est queues stop
    /// at <see cref="PolicySize.MaxEstQueue"/> because the flow's ct mark is made of them.</summary>
    private ushort? QueueNumber(YamlNode node, string path, int max) =>
        Scalar(node, path) is { } text
            ? ushort.TryParse(text, System.Globalization.NumberStyles.None, null, out var n) && n <= max
                ? n
                : Fail<ushort?>(path, node, $"\"{LabelParser.Truncate(text)}\" is not a queue number (0-{max})")
            : null;

    private ImmutableArray<byte> IcmpTypes(YamlNode node, string path, L4Proto? proto) =>
        Sequence(node, path, LabelKeys.MaxListLength)
            .Select((item, i) => Scalar(item, $"{path}[{i}]") is { } text
                ? IcmpSyntax.Parse(text, proto == L4Proto.Icmpv6) is { } type
                    ? (byte?)type
                    : Fail<byte?>($"{path}[{i}]", item, $"\"{LabelParser.Truncate(text)}\" is not an ICMP type name or number (0-255)")
                : null)
            .OfType<byte>()
            .Distinct()
            .ToImmutableArray();

    private ImmutableArray<string> Hosts(YamlNode node, string path) =>
        Sequence(node, path, LabelKeys.MaxListLength)
            .Select((item, i) => Scalar(item, $"{path}[{i}]") is { } text
                ? HostSyntax.Normalise(text, proxy, out var problem) is { } name
                    ? name
                    : Fail<string?>($"{path}[{i}]", item, problem!)
                : null)
            .OfType<string>()
            .Distinct()
            .ToImmutableArray();

    /// <summary>`ips: [...]`, or whalewall's older `ip: "..."` (a single value or a list).</summary>
    private ImmutableArray<AddressRange> AddressList(YamlMappingNode map, string path, string key, string alias) =>
        Aliased(map, path, key, alias, Ips);

    /// <summary>`dst_ports: [...]`, or whalewall's older `port: 80`.</summary>
    private ImmutableArray<PortRange> PortList(YamlMappingNode map, string path) =>
        Aliased(map, path, "dst_ports", "port", Ports);

    /// <summary>A list under <paramref name="key"/>, or under its older spelling
    /// <paramref name="alias"/> where a single value stands for a list of one; not both.</summary>
    private ImmutableArray<T> Aliased<T>(YamlMappingNode map, string path, string key, string alias,
        Func<YamlNode, string, ImmutableArray<T>> read)
    {
        var (a, b) = (Get(map, key), Get(map, alias));
        if (a is not null && b is not null)
        {
            errors.Add($"{path}.{alias}", b, $"`{alias}` and `{key}` mean the same; give one");
            return [];
        }
        if (a is not null) return read(a, $"{path}.{key}");
        if (b is null) return [];
        return read(b as YamlSequenceNode ?? new YamlSequenceNode(b), $"{path}.{alias}");
    }

    private ImmutableArray<AddressRange> Ips(YamlNode node, string path) =>
        Parsed(node, path, text => AddressSyntax.Parse(text) is var r ? (r.Range, r.Error) : default);

    private ImmutableArray<PortRange> Ports(YamlNode node, string path) =>
        Parsed(node, path, text => PortSyntax.Parse(text) is var r ? (r.Range, r.Error) : default);

    /// <summary>A list of values each parsed by <paramref name="parse"/>; every bad one is an error.</summary>
    private ImmutableArray<T> Parsed<T>(YamlNode node, string path, Func<string, (T? Value, string? Error)> parse) where T : class =>
        Sequence(node, path, LabelKeys.MaxListLength)
            .Select((item, i) => Scalar(item, $"{path}[{i}]") is { } text
                ? parse(text) switch
                {
                    { Value: { } value } => value,
                    { Error: var message } => Fail<T?>($"{path}[{i}]", item, message!),
                }
                : null)
            .OfType<T>()
            .ToImmutableArray();

    private L4Proto? Proto(YamlNode node, string path) =>
        Scalar(node, path)?.ToLowerInvariant() switch
        {
            null => null,
            "tcp" => L4Proto.Tcp,
            "udp" => L4Proto.Udp,
            "icmp" => L4Proto.Icmp,
            "icmpv6" or "ipv6-icmp" => L4Proto.Icmpv6,
            var other => Fail<L4Proto?>(path, node, $"unknown proto \"{LabelParser.Truncate(other)}\" (tcp, udp, icmp or icmpv6)"),
        };

    private bool Bool(YamlNode node, string path) =>
        Scalar(node, path)?.ToLowerInvariant() switch
        {
            null => false,
            "true" => true,
            "false" => false,
            var other => Fail<bool>(path, node, $"must be true or false, got \"{LabelParser.Truncate(other)}\""),
        };

    private string? Name(YamlNode node, string path)
    {
        var text = Scalar(node, path);
        if (text is null) return null;
        if (text.Length is 0 or > 255 || text.Any(char.IsWhiteSpace))
            return Fail<string?>(path, node, "must be a non-empty name without spaces (at most 255 characters)");
        return text;
    }

    private YamlMappingNode? Mapping(YamlNode node, string path) => node switch
    {
        YamlMappingNode m => m,
        _ => Fail<YamlMappingNode?>(path, node, "must be a mapping"),
    };

    /// <summary>A list of at most <paramref name="max"/> entries. Inside a rule a missing list
    /// means "any" (any destination, any port), so an explicitly empty one is refused: it reads
    /// like "none" and would have meant "any".</summary>
    private IReadOnlyList<YamlNode> Sequence(YamlNode node, string path, int max, bool allowEmpty = false)
    {
        if (node is not YamlSequenceNode seq) return Fail<IReadOnlyList<YamlNode>>(path, node, "must be a list", []);
        if (seq.Children.Count > max) return Fail<IReadOnlyList<YamlNode>>(path, node, $"at most {max} entries allowed, got {seq.Children.Count}", []);
        if (seq.Children.Count == 0 && !allowEmpty)
            return Fail<IReadOnlyList<YamlNode>>(path, node, "an empty list is not allowed: leave the key out to mean any, or list what to allow", []);
        return seq.Children.ToList();
    }

    private string? Scalar(YamlNode node, string path) => node switch
    {
        YamlScalarNode { Value: { } v } => v.Trim(),
        _ => Fail<string?>(path, node, "must be a single value"),
    };

    private void CheckKeys(YamlMappingNode map, string path, string[] allowed)
    {
        foreach (var key in map.Children.Keys)
        {
            var name = (key as YamlScalarNode)?.Value ?? "";
            var shown = LabelParser.Truncate(name);
            var at = path.Length == 0 ? shown : $"{path}.{shown}";
            // a key is looked up with its tag (Get): a tagged `!!str ips` would pass this check
            // by its value and then never be read, silently meaning "any destination"
            if (!key.Tag.IsEmpty)
            {
                errors.Add(at, key, $"tagged key `{LabelParser.Truncate(key.Tag.Value)} {shown}`: write the key without a tag");
                continue;
            }
            if (allowed.Contains(name)) continue;
            errors.Add(at, key, name == "<<"
                ? "merge keys (`<<`) are not supported: write the keys out (an alias can share a whole value)"
                : $"unknown key `{shown}` (expected one of: {string.Join(", ", allowed)})");
        }
    }

    /// <summary>The value under an untagged <paramref name="key"/> (<see cref="CheckKeys"/> refuses tagged ones).</summary>
    private static YamlNode? Get(YamlMappingNode map, string key) =>
        map.Children.TryGetValue(new YamlScalarNode(key), out var value) ? value : null;

    private T Fail<T>(string path, YamlNode node, string message, T value = default!)
    {
        errors.Add(path, node, message);
        return value;
    }
}
