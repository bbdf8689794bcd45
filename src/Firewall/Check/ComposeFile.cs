using System.Collections.Immutable;
using WhaleWall.Firewall.Policy;
using WhaleWall.Firewall.Labels;
using YamlDotNet.RepresentationModel;

namespace WhaleWall.Firewall.Check;

/// <summary>One service of a compose file, as far as WhaleWall cares.</summary>
public sealed record ComposeService(string Name, ImmutableDictionary<string, string> Labels, ImmutableArray<PublishedPort> Ports);

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

            var result = ImmutableArray.CreateBuilder<ComposeService>();
            foreach (var (name, value) in Entries(services))
            {
                if (value is not YamlMappingNode serviceMap) continue;
                var service = Entries(serviceMap);
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
                result.Add(new ComposeService(name, labels.ToImmutable(), Ports(service)));
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
