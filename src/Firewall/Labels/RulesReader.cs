using System.Collections.Immutable;
using WhaleWall.Firewall.Policy;
using YamlDotNet.RepresentationModel;

namespace WhaleWall.Firewall.Labels;

/// <summary>Walks the YAML tree of <c>whalewall.rules</c> into policy records, reporting
/// every problem with its path (<c>output[2].dst_ports[0]</c>) and line.</summary>
internal sealed class RulesReader(ErrorSink errors)
{
    private static readonly string[] RootKeys = ["output", "mapped_ports"];
    private static readonly string[] RuleKeys = ["network", "ips", "container", "proto", "dst_ports"];
    private static readonly string[] MappedKeys = ["localhost", "external"];
    private static readonly string[] LocalhostKeys = ["allow"];
    private static readonly string[] ExternalKeys = ["allow", "ips"];

    /// <summary>Keys of whalewall's schema that this version does not enforce yet: refusing
    /// them (fail closed) is safer than silently ignoring part of an operator's intent.</summary>
    private static readonly string[] NotYetSupported = ["src_ports", "log_prefix", "verdict"];

    public ContainerPolicy Root(YamlNode root)
    {
        var map = Mapping(root, "");
        if (map is null) return ContainerPolicy.DropAll;
        CheckKeys(map, "", RootKeys);

        var output = ImmutableArray<OutputRule>.Empty;
        if (Get(map, "output") is { } outputNode)
        {
            var rules = Sequence(outputNode, "output", LabelKeys.MaxRules);
            output = rules.Select((node, i) => Rule(node, $"output[{i}]")).OfType<OutputRule>().ToImmutableArray();
        }

        var mapped = Get(map, "mapped_ports") is { } mappedNode
            ? MappedPorts(mappedNode, "mapped_ports")
            : MappedPortsPolicy.Closed;
        return new ContainerPolicy(output, mapped);
    }

    private OutputRule? Rule(YamlNode node, string path)
    {
        var map = Mapping(node, path);
        if (map is null) return null;
        CheckKeys(map, path, RuleKeys);
        var before = errors.Count;

        var network = Get(map, "network") is { } n ? Name(n, path + ".network") : null;
        var container = Get(map, "container") is { } c ? Name(c, path + ".container") : null;
        var ips = Get(map, "ips") is { } i ? Ips(i, path + ".ips") : [];
        L4Proto? proto = Get(map, "proto") is { } p ? Proto(p, path + ".proto") : null;
        var ports = Get(map, "dst_ports") is { } d ? Ports(d, path + ".dst_ports") : [];

        if (container is not null && Get(map, "ips") is not null)
            errors.Add(path, node, "a rule takes either `ips` or `container`, not both");
        if (Get(map, "dst_ports") is { } dp && proto is null && Get(map, "proto") is null)
            errors.Add(path + ".dst_ports", dp, "ports need `proto` (tcp or udp)");
        if (map.Children.Count == 0)
            errors.Add(path, node, "empty rule; to allow everything say `ips: [0.0.0.0/0, ::/0]`");

        return errors.Count == before ? new OutputRule(network, ips, container, proto, ports) : null;
    }

    private MappedPortsPolicy MappedPorts(YamlNode node, string path)
    {
        var map = Mapping(node, path);
        if (map is null) return MappedPortsPolicy.Closed;
        CheckKeys(map, path, MappedKeys);

        var localhost = false;
        if (Get(map, "localhost") is { } l && Mapping(l, path + ".localhost") is { } lm)
        {
            CheckKeys(lm, path + ".localhost", LocalhostKeys);
            localhost = Get(lm, "allow") is { } a && Bool(a, path + ".localhost.allow");
        }

        var external = false;
        var ips = ImmutableArray<AddressRange>.Empty;
        if (Get(map, "external") is { } e && Mapping(e, path + ".external") is { } em)
        {
            CheckKeys(em, path + ".external", ExternalKeys);
            external = Get(em, "allow") is { } a && Bool(a, path + ".external.allow");
            if (Get(em, "ips") is { } i) ips = Ips(i, path + ".external.ips");
        }
        return new MappedPortsPolicy(localhost, external, ips);
    }

    private ImmutableArray<AddressRange> Ips(YamlNode node, string path) =>
        Sequence(node, path, LabelKeys.MaxListLength)
            .Select((item, i) => Scalar(item, $"{path}[{i}]") is { } text
                ? AddressSyntax.Parse(text) switch
                {
                    { Range: { } r } => r,
                    { Error: var message } => Fail<AddressRange>($"{path}[{i}]", item, message!),
                }
                : null)
            .OfType<AddressRange>()
            .ToImmutableArray();

    private ImmutableArray<PortRange> Ports(YamlNode node, string path) =>
        Sequence(node, path, LabelKeys.MaxListLength)
            .Select((item, i) => Scalar(item, $"{path}[{i}]") is { } text
                ? PortSyntax.Parse(text) switch
                {
                    { Range: { } r } => r,
                    { Error: var message } => Fail<PortRange>($"{path}[{i}]", item, message!),
                }
                : null)
            .OfType<PortRange>()
            .ToImmutableArray();

    private L4Proto? Proto(YamlNode node, string path) =>
        Scalar(node, path)?.ToLowerInvariant() switch
        {
            null => null,
            "tcp" => L4Proto.Tcp,
            "udp" => L4Proto.Udp,
            var other => Fail<L4Proto?>(path, node, $"unknown proto \"{LabelParser.Truncate(other)}\" (tcp or udp)"),
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

    private IReadOnlyList<YamlNode> Sequence(YamlNode node, string path, int max)
    {
        if (node is not YamlSequenceNode seq) return Fail<IReadOnlyList<YamlNode>>(path, node, "must be a list", []);
        if (seq.Children.Count > max) return Fail<IReadOnlyList<YamlNode>>(path, node, $"at most {max} entries allowed, got {seq.Children.Count}", []);
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
            var at = path.Length == 0 ? name : $"{path}.{name}";
            if (allowed.Contains(name)) continue;
            errors.Add(at, key, NotYetSupported.Contains(name)
                ? $"`{name}` is not supported by this version of WhaleWall"
                : $"unknown key `{LabelParser.Truncate(name)}` (expected one of: {string.Join(", ", allowed)})");
        }
    }

    private static YamlNode? Get(YamlMappingNode map, string key) =>
        map.Children.TryGetValue(new YamlScalarNode(key), out var value) ? value : null;

    private T Fail<T>(string path, YamlNode node, string message, T value = default!)
    {
        errors.Add(path, node, message);
        return value;
    }
}
