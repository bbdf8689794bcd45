using System.Collections.Immutable;
using WhaleWall.Firewall.Policy;
using WhaleWall.Firewall.Labels;
using YamlDotNet.RepresentationModel;

namespace WhaleWall.Firewall.Check;

/// <summary>A network as Docker will name it (<c>&lt;project&gt;_&lt;key&gt;</c> unless the file names
/// it or it is external) and its driver.</summary>
public sealed record ComposeNetwork(string Name, string Driver);

/// <summary>One service of a compose file, as far as WhaleWall cares: labels, published ports,
/// the networks its container will be attached to and its <c>network_mode</c>, in Docker's
/// spelling (<c>host</c>, <c>none</c>, <c>container:&lt;name&gt;</c>; null: networks).</summary>
public sealed record ComposeService(string Name, ImmutableDictionary<string, string> Labels, ImmutableArray<PublishedPort> Ports,
    ImmutableArray<ComposeNetwork> Networks = default, string? NetworkMode = null)
{
    /// <summary><c>docker run</c> without <c>--network</c>: Docker's default bridge.</summary>
    public static readonly ImmutableArray<ComposeNetwork> DefaultBridge = [new("bridge", "bridge")];

    public ImmutableArray<ComposeNetwork> NetworksOrDefault => Networks.IsDefault ? DefaultBridge : Networks;
}

/// <summary>Reads services' labels (map or list form) and published ports from a compose
/// file's text, with merge keys (<c>&lt;&lt;: *defaults</c>) applied as docker compose does.
/// Pure: text in, services or an error out. The text goes through <see cref="BoundedYaml"/>
/// first: a compose file checked in CI may be as hostile as a label.</summary>
public static class ComposeFile
{
    public sealed record Result(string Project, ImmutableArray<ComposeService> Services, string? Error);

    public static Result Parse(string yaml, string defaultProject)
    {
        var loaded = BoundedYaml.Load(yaml, BoundedYaml.Compose);
        if (loaded.Error is { } problem)
            return new(defaultProject, [], problem.Line is { } line ? $"line {line}: {problem.Message}" : problem.Message);
        var root = loaded.Documents.IsEmpty ? null : loaded.Documents[0];
        if (root is not YamlMappingNode rootMap) return new(defaultProject, [], "not a compose file: expected a mapping with `services`");
        try
        {
            var map = Entries(rootMap);
            var project = Scalar(map, "name") ?? defaultProject;
            if (!map.TryGetValue("services", out var servicesNode) || servicesNode is not YamlMappingNode services)
                return new(project, [], "no `services` mapping");

            var declared = DeclaredNetworks(map, project);
            var result = ImmutableArray.CreateBuilder<ComposeService>();
            foreach (var (name, value) in Entries(services))
            {
                if (value is not YamlMappingNode serviceMap) continue;
                var service = Entries(serviceMap);
                var (networks, mode) = NetworksOf(service, declared, project);
                var labels = ImmutableDictionary.CreateBuilder<string, string>();
                switch (service.GetValueOrDefault("labels"))
                {
                    case YamlMappingNode m:
                        foreach (var (k, v) in Entries(m))
                            labels[k] = (v as YamlScalarNode)?.Value ?? "";
                        break;
                    case YamlSequenceNode seq:
                        foreach (var item in seq.Children.OfType<YamlScalarNode>())
                        {
                            var text = item.Value ?? "";
                            var eq = text.IndexOf('=');
                            if (eq < 0) labels[text] = ""; else labels[text[..eq]] = text[(eq + 1)..];
                        }
                        break;
                }
                labels[ContainerFacts.ComposeProjectLabel] = project;
                labels[ContainerFacts.ComposeServiceLabel] = name;
                result.Add(new ComposeService(name, labels.ToImmutable(), Ports(service), networks, mode));
            }
            return new(project, result.ToImmutable(), null);
        }
        catch (MergeTooDeep e)
        {
            return new(defaultProject, [], e.Message);
        }
    }

    /// <summary>Most merge keys followed one inside another (each may name a mapping that has its own).</summary>
    private const int MaxMergeDepth = 8;

    private sealed class MergeTooDeep(int? line) : Exception($"{(line is { } l ? $"line {l}: " : "")}merge keys (`<<`) nested deeper than {MaxMergeDepth}");

    /// <summary>A mapping's entries with YAML merge keys applied, as docker compose reads them:
    /// <c>&lt;&lt;: *defaults</c> (or a list of such) adds the keys the mapping does not have
    /// itself, earlier ones first. The loader refused non-scalar keys and bounded the aliases.</summary>
    private static Dictionary<string, YamlNode> Entries(YamlMappingNode map, int depth = 0)
    {
        if (depth > MaxMergeDepth) throw new MergeTooDeep((int)map.Start.Line);
        var entries = new Dictionary<string, YamlNode>(StringComparer.Ordinal);
        YamlNode? merge = null;
        foreach (var (key, value) in map.Children)
        {
            var name = (key as YamlScalarNode)?.Value ?? "";
            if (name == "<<" && key is YamlScalarNode { Style: not (YamlDotNet.Core.ScalarStyle.SingleQuoted or YamlDotNet.Core.ScalarStyle.DoubleQuoted) }) merge = value;
            else entries[name] = value;
        }
        var sources = merge switch
        {
            YamlMappingNode one => [one],
            YamlSequenceNode list => list.Children.OfType<YamlMappingNode>().ToList(),
            _ => new List<YamlMappingNode>(),
        };
        foreach (var source in sources)
            foreach (var (key, value) in Entries(source, depth + 1))
                entries.TryAdd(key, value);
        return entries;
    }

    /// <summary>Top-level <c>networks:</c>: key -> the network Docker will create or use
    /// (<c>name:</c>, else the key when <c>external</c>, else <c>&lt;project&gt;_&lt;key&gt;</c>) and its
    /// driver (default bridge). <c>default</c> is always there.</summary>
    private static Dictionary<string, ComposeNetwork> DeclaredNetworks(Dictionary<string, YamlNode> root, string project)
    {
        var declared = new Dictionary<string, ComposeNetwork>(StringComparer.Ordinal) { ["default"] = new($"{project}_default", "bridge") };
        if (!root.TryGetValue("networks", out var node) || node is not YamlMappingNode networks) return declared;
        foreach (var (key, v) in Entries(networks))
        {
            var spec = v is YamlMappingNode m ? Entries(m) : null;
            var external = spec is not null && Scalar(spec, "external") is "true" or "True" or "yes";
            var name = (spec is null ? null : Scalar(spec, "name")) ?? (external ? key : $"{project}_{key}");
            declared[key] = new ComposeNetwork(name, (spec is null ? null : Scalar(spec, "driver")) ?? "bridge");
        }
        return declared;
    }

    /// <summary>A service's <c>network_mode</c> (host, none, bridge, <c>service:x</c> and
    /// <c>container:x</c> -> <c>container:x</c>) or its <c>networks:</c> (list or map form;
    /// none: the project's default network).</summary>
    private static (ImmutableArray<ComposeNetwork> Networks, string? Mode) NetworksOf(Dictionary<string, YamlNode> service,
        Dictionary<string, ComposeNetwork> declared, string project)
    {
        switch (Scalar(service, "network_mode"))
        {
            case "host": return ([], "host");
            case "none": return ([], "none");
            case "bridge": return (ComposeService.DefaultBridge, null);
            case { } mode when mode.StartsWith("service:", StringComparison.Ordinal): return ([], "container:" + mode["service:".Length..]);
            case { } mode when mode.StartsWith("container:", StringComparison.Ordinal): return ([], mode);
        }
        if (!service.TryGetValue("networks", out var node)) return ([declared["default"]], null);
        IEnumerable<string> keys = node switch
        {
            YamlSequenceNode list => list.Children.OfType<YamlScalarNode>().Select(n => n.Value ?? ""),
            YamlMappingNode m => m.Children.Keys.OfType<YamlScalarNode>().Select(n => n.Value ?? ""),
            _ => [],
        };
        return ([.. keys.Where(k => k.Length > 0).Distinct()
            .Select(k => declared.TryGetValue(k, out var n) ? n : new ComposeNetwork($"{project}_{k}", "bridge"))], null);
    }

    /// <summary>Short syntax ("8080", "18080:8080", "127.0.0.1:18080:8080/udp") and long syntax
    /// (target/published/protocol).</summary>
    private static ImmutableArray<PublishedPort> Ports(Dictionary<string, YamlNode> service)
    {
        if (!service.TryGetValue("ports", out var node) || node is not YamlSequenceNode list) return [];
        var ports = ImmutableArray.CreateBuilder<PublishedPort>();
        foreach (var item in list.Children)
        {
            if (item is YamlScalarNode { Value: { } text })
            {
                var proto = text.EndsWith("/udp", StringComparison.Ordinal) ? L4Proto.Udp : L4Proto.Tcp;
                var parts = text.Split('/')[0].Split(':');
                if (ushort.TryParse(parts[^1].Split('-')[0], out var target))
                    ports.Add(new PublishedPort(target, proto, "0.0.0.0", parts.Length > 1 && ushort.TryParse(parts[^2], out var p) ? p : target));
            }
            else if (item is YamlMappingNode port && Entries(port) is var m && ushort.TryParse(Scalar(m, "target"), out var target))
            {
                var proto = Scalar(m, "protocol") == "udp" ? L4Proto.Udp : L4Proto.Tcp;
                ports.Add(new PublishedPort(target, proto, "0.0.0.0", ushort.TryParse(Scalar(m, "published"), out var p) ? p : target));
            }
        }
        return ports.ToImmutable();
    }

    private static string? Scalar(Dictionary<string, YamlNode> map, string key) =>
        map.TryGetValue(key, out var v) ? (v as YamlScalarNode)?.Value : null;
}
