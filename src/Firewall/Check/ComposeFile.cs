using System.Collections.Immutable;
using WhaleWall.Firewall.Policy;
using WhaleWall.Firewall.Labels;
using YamlDotNet.RepresentationModel;

namespace WhaleWall.Firewall.Check;

/// <summary>One service of a compose file, as far as WhaleWall cares.</summary>
public sealed record ComposeService(string Name, ImmutableDictionary<string, string> Labels, ImmutableArray<PublishedPort> Ports);

/// <summary>Reads services' labels (map or list form) and published ports from a compose
/// file's text. Pure: text in, services or an error out.</summary>
public static class ComposeFile
{
    public sealed record Result(string Project, ImmutableArray<ComposeService> Services, string? Error);

    public static Result Parse(string yaml, string defaultProject)
    {
        var loaded = BoundedYaml.Load(yaml, BoundedYaml.Compose);
        if (loaded.Error is { } problem)
            return new(defaultProject, [], problem.Line is { } line ? $"line {line}: {problem.Message}" : problem.Message);
        var root = loaded.Documents.IsEmpty ? null : loaded.Documents[0];
        if (root is not YamlMappingNode map) return new(defaultProject, [], "not a compose file: expected a mapping with `services`");
        var project = Scalar(map, "name") ?? defaultProject;
        if (!map.Children.TryGetValue(new YamlScalarNode("services"), out var servicesNode) || servicesNode is not YamlMappingNode services)
            return new(project, [], "no `services` mapping");

        var result = ImmutableArray.CreateBuilder<ComposeService>();
        foreach (var (key, value) in services.Children)
        {
            var name = (key as YamlScalarNode)?.Value ?? "";
            if (value is not YamlMappingNode service) continue;
            var labels = ImmutableDictionary.CreateBuilder<string, string>();
            if (service.Children.TryGetValue(new YamlScalarNode("labels"), out var labelsNode))
            {
                switch (labelsNode)
                {
                    case YamlMappingNode m:
                        foreach (var (k, v) in m.Children)
                            labels[((YamlScalarNode)k).Value ?? ""] = (v as YamlScalarNode)?.Value ?? "";
                        break;
                    case YamlSequenceNode s:
                        foreach (var item in s.Children.OfType<YamlScalarNode>())
                        {
                            var text = item.Value ?? "";
                            var eq = text.IndexOf('=');
                            if (eq < 0) labels[text] = ""; else labels[text[..eq]] = text[(eq + 1)..];
                        }
                        break;
                }
            }
            labels[ContainerFacts.ComposeProjectLabel] = project;
            labels[ContainerFacts.ComposeServiceLabel] = name;
            result.Add(new ComposeService(name, labels.ToImmutable(), Ports(service)));
        }
        return new(project, result.ToImmutable(), null);
    }

    /// <summary>Short syntax ("8080", "18080:8080", "127.0.0.1:18080:8080/udp") and long syntax
    /// (target/published/protocol).</summary>
    private static ImmutableArray<PublishedPort> Ports(YamlMappingNode service)
    {
        if (!service.Children.TryGetValue(new YamlScalarNode("ports"), out var node) || node is not YamlSequenceNode list) return [];
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
            else if (item is YamlMappingNode m && ushort.TryParse(Scalar(m, "target"), out var target))
            {
                var proto = Scalar(m, "protocol") == "udp" ? L4Proto.Udp : L4Proto.Tcp;
                ports.Add(new PublishedPort(target, proto, "0.0.0.0", ushort.TryParse(Scalar(m, "published"), out var p) ? p : target));
            }
        }
        return ports.ToImmutable();
    }

    private static string? Scalar(YamlMappingNode map, string key) =>
        map.Children.TryGetValue(new YamlScalarNode(key), out var v) ? (v as YamlScalarNode)?.Value : null;
}
