using System.Collections.Immutable;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.RepresentationModel;

namespace WhaleWall.Firewall.Labels;

/// <summary>YAML text -> node trees, with the work a hostile text can cause bounded before any
/// tree is built. YamlDotNet's loader (<see cref="YamlStream"/>) recurses once per nesting level
/// with no limit (60 KB of <c>[</c> overflow the stack and abort the process) and hashes mapping
/// keys structurally (an alias graph used as a key takes exponential time). So the text is first
/// read as a stream of parser events, which YamlDotNet produces without recursion, and refused
/// when it nests too deep, uses an alias, list or mapping as a mapping key, uses too many
/// aliases, or expands past a node budget once aliases are followed (each alias counts the size
/// of the node it names, computed arithmetically). Only then is the tree built. Pure and total.</summary>
public static class BoundedYaml
{
    /// <param name="MaxDepth">Most nested lists/mappings.</param>
    /// <param name="MaxAliases">Most alias uses (<c>*name</c>).</param>
    /// <param name="MaxNodes">Most nodes of the documents once every alias is replaced by the
    /// node it names.</param>
    public sealed record Limits(int MaxDepth, int MaxAliases, int MaxNodes);

    /// <summary>For <c>whalewall.rules</c>. A valid policy nests 4 levels (root mapping, the
    /// <c>output</c> list, a rule, its <c>verdict</c> or a list); 16 leaves room for an invalid
    /// one to still get the reader's precise error while keeping every recursion in YamlDotNet
    /// shallow. Without aliases 64 KiB hold at most ~33,000 nodes (<c>1,</c> each), so 65,536
    /// lets aliases at most double what plain text can say; 1,024 aliases are far more than
    /// sharing a few lists between 256 rules needs.</summary>
    public static readonly Limits Label = new(MaxDepth: 16, MaxAliases: 1024, MaxNodes: 65_536);

    /// <summary>For compose files (<c>whalewall check --compose</c>): they nest deeper
    /// (<c>x-</c> extensions, deploy sections) and are larger than one label.</summary>
    public static readonly Limits Compose = new(MaxDepth: 64, MaxAliases: 4096, MaxNodes: 1_000_000);

    public readonly record struct Problem(int? Line, string Message);

    /// <summary>The root node of each document, or the first problem found.</summary>
    public sealed record Result(ImmutableArray<YamlNode> Documents, Problem? Error);

    public static Result Load(string text, Limits limits)
    {
        if (Scan(text, limits) is { } problem) return new([], problem);
        try
        {
            var stream = new YamlStream();
            stream.Load(new StringReader(text));
            return new([.. stream.Documents.Select(d => d.RootNode)], null);
        }
        catch (YamlException e)
        {
            return new([], new((int)e.Start.Line, "invalid YAML: " + FirstLine(e.Message)));
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException or FormatException or OverflowException)
        {
            return new([], new(null, "invalid YAML: " + FirstLine(e.Message)));
        }
    }

    private sealed class Frame(bool mapping, string? anchor)
    {
        public readonly bool Mapping = mapping;
        public readonly string? Anchor = anchor;
        public bool KeyNext = mapping;
        public long Size = 1;
    }

    /// <summary>Null when <paramref name="text"/> is within <paramref name="limits"/> and
    /// well-formed as far as the event stream tells; otherwise the first problem.</summary>
    public static Problem? Scan(string text, Limits limits)
    {
        var frames = new Stack<Frame>();
        // anchors of complete nodes with their expanded sizes; anchors of nodes still open
        // (YamlDotNet's loader already binds an alias to those: a cycle)
        var anchors = new Dictionary<string, long>(StringComparer.Ordinal);
        var open = new Dictionary<string, int>(StringComparer.Ordinal);
        long expanded = 0;
        var aliases = 0;
        try
        {
            var parser = new Parser(new StringReader(text));
            while (parser.MoveNext())
            {
                var current = parser.Current!;
                var line = (int)current.Start.Line;
                var atKey = frames.TryPeek(out var parent) && parent.Mapping && parent.KeyNext;
                long size;
                switch (current)
                {
                    case DocumentStart:
                        anchors.Clear(); // anchors are per document
                        open.Clear();
                        continue;
                    case Scalar scalar:
                        size = 1;
                        Named(scalar.Anchor, size);
                        break;
                    case AnchorAlias alias:
                        if (atKey)
                            return new(line, $"an alias (`*{Echo(alias.Value.Value)}`) cannot be a mapping key");
                        if (++aliases > limits.MaxAliases)
                            return new(line, $"more than {limits.MaxAliases} aliases");
                        if (open.ContainsKey(alias.Value.Value))
                            return new(line, $"alias `*{Echo(alias.Value.Value)}` is inside the node it names");
                        if (!anchors.TryGetValue(alias.Value.Value, out size))
                            return new(line, $"alias `*{Echo(alias.Value.Value)}` names no node before it");
                        break;
                    case NodeEvent { } start and (SequenceStart or MappingStart):
                        if (atKey) return new(line, "a list or mapping cannot be a mapping key");
                        if (frames.Count >= limits.MaxDepth)
                            return new(line, $"nested deeper than {limits.MaxDepth} levels");
                        if (++expanded > limits.MaxNodes) return TooLarge(line, limits);
                        var frame = new Frame(start is MappingStart, start.Anchor.IsEmpty ? null : start.Anchor.Value);
                        if (frame.Anchor is { } name)
                        {
                            anchors.Remove(name);
                            open[name] = open.GetValueOrDefault(name) + 1;
                        }
                        frames.Push(frame);
                        continue;
                    case SequenceEnd or MappingEnd:
                        var done = frames.Pop();
                        if (done.Anchor is { } closed)
                        {
                            if (--open[closed] == 0) open.Remove(closed);
                            anchors[closed] = done.Size;
                        }
                        Complete(done.Size, countNow: false);
                        continue;
                    default:
                        continue;
                }
                if (expanded + size > limits.MaxNodes) return TooLarge(line, limits);
                Complete(size, countNow: true);
            }
            return null;
        }
        catch (YamlException e)
        {
            return new((int)e.Start.Line, "invalid YAML: " + FirstLine(e.Message));
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException or FormatException or OverflowException)
        {
            // YamlDotNet's scanner throws these on some malformed input
            return new(null, "invalid YAML: " + FirstLine(e.Message));
        }

        void Named(AnchorName anchor, long size)
        {
            if (!anchor.IsEmpty) anchors[anchor.Value] = size;
        }

        // a finished node adds its size to its parent; `expanded` counts each node once, when
        // it starts (collections) or as a whole (scalars and aliases)
        void Complete(long size, bool countNow)
        {
            if (countNow) expanded += size;
            if (!frames.TryPeek(out var top)) return;
            top.Size += size;
            if (top.Mapping) top.KeyNext = !top.KeyNext;
        }
    }

    private static Problem TooLarge(int line, Limits limits) =>
        new(line, $"more than {limits.MaxNodes} nodes once aliases are expanded");

    private static string Echo(string text) => SafeText.Escape(text, 64);

    private static string FirstLine(string text) => SafeText.Escape(text.Split('\n')[0].Trim(), 200);
}
