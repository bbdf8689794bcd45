using System.Collections.Immutable;
using WhaleWall.Firewall.Policy;
using YamlDotNet.RepresentationModel;

namespace WhaleWall.Firewall.Labels;

/// <summary>Collects the errors of one label, each with its YAML path and line.</summary>
internal sealed class ErrorSink(string label)
{
    private const int MaxErrors = 50;
    private readonly ImmutableArray<LabelError>.Builder errors = ImmutableArray.CreateBuilder<LabelError>();

    public int Count => errors.Count;

    public void Add(string path, int? line, string message)
    {
        if (errors.Count < MaxErrors) errors.Add(new LabelError(label, path, line, message));
    }

    public void Add(string path, YamlNode node, string message) => Add(path, (int)node.Start.Line, message);

    public ImmutableArray<LabelError> ToImmutable() => errors.ToImmutable();
}
