using System.Text;
using System.Text.RegularExpressions;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Policy;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.RepresentationModel;

namespace WhaleWall.Firewall.Check;

/// <summary>
/// Sets labels on one service of a compose file's text (<c>whalewall suggest --compose</c>), as
/// a text edit guided by YamlDotNet's node positions: only the labels' own bytes change; the
/// service's labels keep the form found (block or flow mapping, block or flow list of
/// <c>key=value</c>), an existing key is replaced where it stands, a new key goes after the last
/// one, and a service without labels gets a <c>labels:</c> mapping after its last entry.
/// Multi-line values become literal block scalars (<c>|</c>, <c>|-</c>) in block forms and
/// double-quoted scalars in flow forms; single-line values are plain where YAML reads them back
/// as the same string, else double-quoted. The result is parsed again (<see cref="ComposeFile"/>,
/// merge keys applied as docker compose does) and accepted only if the service's labels are
/// exactly the old ones with the given keys set, and every other service is unchanged; else
/// the edit is refused.
/// Pure and total: errors are values. Anchors, aliases and merge keys that would make an edit
/// reach beyond this service's labels are refused, not guessed at.
/// </summary>
public static class ComposeLabels
{
    public sealed record Result(string? Text, string? Error)
    {
        public static Result Fail(string error) => new(null, error);
    }

    /// <summary>Largest compose file edited (characters): real ones are a few KiB; reading,
    /// editing and checking 1.3 MB (20,000 services) takes ~2 s of CPU.</summary>
    public const int MaxChars = 4 << 20;

    public static Result Set(string yaml, string service, IEnumerable<KeyValuePair<string, string>> labels)
    {
        if (yaml.Length > MaxChars) return Result.Fail($"compose file larger than {MaxChars >> 20} MiB: not edited");
        var wanted = new List<KeyValuePair<string, string>>();
        foreach (var (k, v) in labels)
        {
            if (k.Length == 0 || k.Any(c => c is '\n' or '\r' or '\0') || k.Trim() != k) return Result.Fail($"invalid label key `{Echo(k)}`");
            if (wanted.Any(w => w.Key == k)) return Result.Fail($"label `{Echo(k)}` given twice");
            wanted.Add(new(k, v ?? ""));
        }
        if (wanted.Count == 0) return new Result(yaml, null);
        var before = ComposeFile.Parse(yaml, "compose");
        if (before.Error is { } parseError) return Result.Fail(parseError);
        var old = before.Services.FirstOrDefault(s => s.Name == service);
        if (old is null)
            return Result.Fail(Edit(yaml, service, wanted, old: null).Error ?? $"no service `{Echo(service)}`");

        var edited = Edit(yaml, service, wanted, old);
        if (edited.Error is not null) return edited;
        return Verify(edited.Text!, service, wanted, before) is { } problem
            ? Result.Fail("the edited file does not read back as expected: " + problem)
            : edited;
    }

    // ------------------------------------------------------------------ locate and edit

    private static Result Edit(string text, string service, List<KeyValuePair<string, string>> wanted, ComposeService? old)
    {
        var loaded = BoundedYaml.Load(text, BoundedYaml.Compose);
        if (loaded.Error is { } e) return Result.Fail(e.Message);
        if (loaded.Documents.Length != 1 || loaded.Documents[0] is not YamlMappingNode root)
            return Result.Fail("expected a compose file of one document whose root is a mapping");
        var ed = new Editor(text);

        if (Entry(root, "services") is not { } servicesEntry || servicesEntry.Value is not YamlMappingNode services)
            return Result.Fail("no `services` mapping written in the file itself (merged or aliased services are not edited)");
        if (ed.IsAliasUse(servicesEntry.Key, services) || services.Style == MappingStyle.Flow)
            return Result.Fail("`services` is an alias or written in flow style: not edited");
        if (Entry(services, service) is not { } serviceEntry)
            return Result.Fail($"no service `{Echo(service)}` written in `services` itself");
        var (serviceKey, serviceNode) = serviceEntry;
        if (serviceNode is not YamlMappingNode svc) return Result.Fail($"service `{Echo(service)}` is not a mapping");
        if (ed.IsAliasUse(serviceKey, svc)) return Result.Fail($"service `{Echo(service)}` is an alias (`*...`): editing it would change the node it names");
        if (!svc.Anchor.IsEmpty) return Result.Fail($"service `{Echo(service)}` carries an anchor (`&{Echo(svc.Anchor.Value)}`): editing it would change every alias of it");
        if (svc.Style == MappingStyle.Flow) return Result.Fail($"service `{Echo(service)}` is written in flow style (`{{...}}`): not edited");

        var labelsEntry = Entry(svc, "labels");
        if (labelsEntry is null)
        {
            var inherited = (old?.Labels.Keys ?? []).Where(k => k is not ContainerFacts.ComposeProjectLabel and not ContainerFacts.ComposeServiceLabel).ToList();
            if (inherited.Count > 0)
                return Result.Fail($"service `{Echo(service)}` takes its labels from a merge key (`<<`): a `labels:` of its own would replace them all; edit by hand");
            return ed.AddLabelsTo(svc, serviceKey, wanted);
        }
        var (labelsKey, labelsNode) = labelsEntry.Value;
        if (ed.IsAliasUse(labelsKey, labelsNode)) return Result.Fail("`labels` is an alias (`*...`): editing it would change the node it names");
        if (!labelsNode.Anchor.IsEmpty) return Result.Fail($"`labels` carries an anchor (`&{Echo(labelsNode.Anchor.Value)}`): editing it would change every alias of it");
        return labelsNode switch
        {
            YamlScalarNode { Style: ScalarStyle.Plain } s when s.Value is null or "" or "~" or "null" => ed.FillEmptyLabels(labelsKey, s, svc, serviceKey, wanted),
            YamlMappingNode { Style: MappingStyle.Flow } m => ed.EditFlowMap(m, wanted),
            YamlMappingNode m => ed.EditBlockMap(m, wanted),
            YamlSequenceNode { Style: SequenceStyle.Flow } q => ed.EditFlowList(q, wanted),
            YamlSequenceNode q => ed.EditBlockList(q, wanted),
            _ => Result.Fail("`labels` is neither a mapping nor a list"),
        };
    }

    /// <summary>The entry of <paramref name="map"/> whose key is the plain or quoted scalar
    /// <paramref name="key"/>, written in the mapping itself (not merged).</summary>
    private static (YamlScalarNode Key, YamlNode Value)? Entry(YamlMappingNode map, string key)
    {
        foreach (var (k, v) in map.Children)
            if (k is YamlScalarNode s && s.Value == key) return (s, v);
        return null;
    }

    private sealed class Editor(string text)
    {
        private readonly string _nl = text.Contains("\r\n") ? "\r\n" : "\n";
        private readonly List<(int Start, int End, string With)> _edits = [];

        /// <summary>An alias (<c>*name</c>) comes out of YamlDotNet's loader as the node it names,
        /// which is written before it: a value that starts before its own key is one.</summary>
        public bool IsAliasUse(YamlNode key, YamlNode value) => (int)value.Start.Index < (int)key.End.Index;

        // ---------------- block mapping: `key: value` lines
        public Result EditBlockMap(YamlMappingNode map, List<KeyValuePair<string, string>> wanted)
        {
            if (map.Children.Count == 0) return Result.Fail("`labels` is an empty block mapping");
            var first = map.Children.First().Key;
            var indent = Column((int)first.Start.Index);
            var appended = new StringBuilder();
            foreach (var (k, v) in wanted)
            {
                if (FindKey(map, k) is { } found)
                {
                    var (key, value) = found;
                    if (IsAliasUse(key, value) || !value.Anchor.IsEmpty) return Result.Fail($"label `{Echo(k)}` is an alias or carries an anchor: not edited");
                    if (value is not YamlScalarNode scalar) return Result.Fail($"label `{Echo(k)}` is not a scalar");
                    if (ReplaceScalar(key, scalar, Column((int)key.Start.Index), v, flow: false) is { } err) return Result.Fail(err);
                }
                else appended.Append(_nl).Append(Spaces(indent)).Append(Key(k)).Append(':').Append(Value(v, indent, flow: false, leadingSpace: true));
            }
            if (map.Children.Any(c => c.Key is YamlScalarNode { Value: "<<" })) return Result.Fail("`labels` uses a merge key (`<<`): not edited");
            if (appended.Length > 0)
            {
                if (LastLineEnd(map) is not { } at) return Result.Fail("cannot find where `labels` ends (an alias at its end?)");
                _edits.Add((at, at, appended.ToString()));
            }
            return Apply();
        }

        // ---------------- block list: `- key=value` lines
        public Result EditBlockList(YamlSequenceNode list, List<KeyValuePair<string, string>> wanted)
        {
            if (list.Children.Count == 0) return Result.Fail("`labels` is an empty block list");
            var dash = DashBefore((int)list.Children[0].Start.Index);
            if (dash < 0) return Result.Fail("cannot find the `-` of the first label");
            var indent = Column(dash);
            var appended = new StringBuilder();
            foreach (var (k, v) in wanted)
            {
                if (k.Contains('=')) return Result.Fail($"label key `{Echo(k)}` contains `=`: it cannot be written in list form");
                var items = ListItems(list, k);
                if (items.Error is { } err) return Result.Fail(err);
                if (items.Found is { } item)
                {
                    var itemDash = DashBefore((int)item.Start.Index);
                    if (itemDash < 0) return Result.Fail($"cannot find the `-` of label `{Echo(k)}`");
                    if (ReplaceScalar(null, item, Column(itemDash), k + "=" + v, flow: false) is { } e2) return Result.Fail(e2);
                }
                else appended.Append(_nl).Append(Spaces(indent)).Append('-').Append(Value(k + "=" + v, indent, flow: false, leadingSpace: true));
            }
            if (appended.Length > 0)
            {
                if (LastLineEnd(list) is not { } at) return Result.Fail("cannot find where `labels` ends (an alias at its end?)");
                _edits.Add((at, at, appended.ToString()));
            }
            return Apply();
        }

        // ---------------- flow forms: `{k: v, ...}` and `[k=v, ...]`
        public Result EditFlowMap(YamlMappingNode map, List<KeyValuePair<string, string>> wanted)
        {
            if (map.Children.Any(c => c.Key is YamlScalarNode { Value: "<<" })) return Result.Fail("`labels` uses a merge key (`<<`): not edited");
            var added = new List<string>();
            foreach (var (k, v) in wanted)
            {
                if (FindKey(map, k) is { } found)
                {
                    var (key, value) = found;
                    if (IsAliasUse(key, value) || !value.Anchor.IsEmpty || value is not YamlScalarNode scalar || IsEmptyPlain(scalar))
                        return Result.Fail($"label `{Echo(k)}` is an alias, anchored, empty or not a scalar: not edited");
                    _edits.Add(((int)scalar.Start.Index, (int)scalar.End.Index, DoubleQuoted(v)));
                }
                else added.Add(Key(k) + ": " + DoubleQuoted(v));
            }
            return AppendFlow(map, added, '}');
        }

        public Result EditFlowList(YamlSequenceNode list, List<KeyValuePair<string, string>> wanted)
        {
            var added = new List<string>();
            foreach (var (k, v) in wanted)
            {
                if (k.Contains('=')) return Result.Fail($"label key `{Echo(k)}` contains `=`: it cannot be written in list form");
                var items = ListItems(list, k);
                if (items.Error is { } err) return Result.Fail(err);
                if (items.Found is { } item) _edits.Add(((int)item.Start.Index, (int)item.End.Index, DoubleQuoted(k + "=" + v)));
                else added.Add(DoubleQuoted(k + "=" + v));
            }
            return AppendFlow(list, added, ']');
        }

        /// <summary>New entries of a flow collection go right after its last entry (", x"), or
        /// right after its opening bracket when it is empty.</summary>
        private Result AppendFlow(YamlNode node, List<string> added, char close)
        {
            if (added.Count > 0)
            {
                var open = close == '}' ? '{' : '[';
                var start = (int)node.Start.Index;
                if (start < 0 || start >= text.Length || text[start] != open) return Result.Fail($"cannot find the opening `{open}` of `labels`");
                int? lastEnd = node switch
                {
                    YamlMappingNode { Children.Count: > 0 } m => (int)m.Children.Last().Value.End.Index,
                    YamlSequenceNode { Children.Count: > 0 } q => (int)q.Children[^1].End.Index,
                    _ => null,
                };
                if (lastEnd is { } end)
                {
                    if (end <= start || end > text.Length) return Result.Fail("cannot find the last entry of `labels`");
                    _edits.Add((end, end, ", " + string.Join(", ", added)));
                }
                else _edits.Add((start + 1, start + 1, string.Join(", ", added)));
            }
            return Apply();
        }

        // ---------------- no labels yet
        public Result AddLabelsTo(YamlMappingNode svc, YamlScalarNode serviceKey, List<KeyValuePair<string, string>> wanted)
        {
            if (svc.Children.Count == 0) return Result.Fail("the service is an empty mapping");
            var keyIndent = Column((int)svc.Children.First().Key.Start.Index);
            var step = keyIndent - Column((int)serviceKey.Start.Index);
            if (step <= 0) step = 2;
            if (LastLineEnd(svc) is not { } at) return Result.Fail("cannot find where the service ends (an alias at its end?)");
            _edits.Add((at, at, _nl + Spaces(keyIndent) + "labels:" + BlockEntries(wanted, keyIndent + step)));
            return Apply();
        }

        /// <summary><c>labels:</c> with nothing (or null) after it: entries go on the lines after it.</summary>
        public Result FillEmptyLabels(YamlScalarNode labelsKey, YamlScalarNode empty, YamlMappingNode svc, YamlScalarNode serviceKey, List<KeyValuePair<string, string>> wanted)
        {
            var keyIndent = Column((int)labelsKey.Start.Index);
            var step = keyIndent - Column((int)serviceKey.Start.Index);
            if (step <= 0) step = 2;
            var colon = ColonAfter((int)labelsKey.End.Index);
            if (colon < 0) return Result.Fail("cannot find the `:` after `labels`");
            int start = colon + 1, end = start;
            if (empty.Value is "~" or "null") { start = (int)empty.Start.Index; end = (int)empty.End.Index; }
            var rest = text[end..LineEnd(end)];
            if (!IsBlankOrComment(rest)) return Result.Fail("unexpected text after `labels:`");
            _edits.Add((start, end, ""));
            var lineEnd = LineEnd(end);
            _edits.Add((lineEnd, lineEnd, BlockEntries(wanted, keyIndent + step)));
            return Apply();
        }

        private string BlockEntries(List<KeyValuePair<string, string>> wanted, int indent)
        {
            var sb = new StringBuilder();
            foreach (var (k, v) in wanted)
                sb.Append(_nl).Append(Spaces(indent)).Append(Key(k)).Append(':').Append(Value(v, indent, flow: false, leadingSpace: true));
            return sb.ToString();
        }

        /// <summary>Replaces a scalar (its header line's trailing comment kept) by
        /// <paramref name="value"/>; <paramref name="parentIndent"/> is the column of its key or
        /// of its list item's dash.</summary>
        private string? ReplaceScalar(YamlScalarNode? key, YamlScalarNode scalar, int parentIndent, string value, bool flow)
        {
            int headStart, headEnd;
            var leadingSpace = false;
            if (IsEmptyPlain(scalar))
            {
                if (key is null) return "an empty list item cannot be edited";
                var colon = ColonAfter((int)key.End.Index);
                if (colon < 0) return "cannot find the `:` after a label key";
                headStart = headEnd = colon + 1;
                leadingSpace = true;
            }
            else
            {
                headStart = (int)scalar.Start.Index;
                headEnd = scalar.Style is ScalarStyle.Literal or ScalarStyle.Folded ? BlockHeaderEnd(headStart) : (int)scalar.End.Index;
            }
            if (headEnd < headStart || headEnd > text.Length) return "a label's position is out of the text";
            var lineEnd = LineEnd(headEnd);
            var tail = text[headEnd..lineEnd];
            if (!IsBlankOrComment(tail)) return "unexpected text after a label's value";
            var contentEnd = scalar.Style is ScalarStyle.Literal or ScalarStyle.Folded ? BlockContentEnd(lineEnd, parentIndent) : lineEnd;
            var rendered = Value(value, parentIndent, flow, leadingSpace);
            // a block header keeps the old line's comment; its lines follow that comment
            var nl = rendered.IndexOf(_nl, StringComparison.Ordinal);
            var with = nl < 0 ? rendered + tail : rendered[..nl] + tail + rendered[nl..];
            _edits.Add((headStart, contentEnd, with));
            return null;
        }

        private Result Apply()
        {
            var ordered = _edits.OrderBy(e => e.Start).ThenBy(e => e.End).ToList();
            for (var i = 1; i < ordered.Count; i++)
                if (ordered[i].Start < ordered[i - 1].End) return Result.Fail("two edits overlap (a label written twice?)");
            var sb = new StringBuilder(text.Length + 256);
            var at = 0;
            foreach (var (start, end, with) in ordered)
            {
                sb.Append(text, at, start - at).Append(with);
                at = end;
            }
            sb.Append(text, at, text.Length - at);
            return new Result(sb.ToString(), null);
        }

        // ---------------- rendering
        /// <summary>A value after <c>key:</c> or <c>-</c>: a literal block scalar for a multi-line
        /// value in block form (lines indented by <paramref name="parentIndent"/> + 2), else one
        /// scalar on the line.</summary>
        private string Value(string value, int parentIndent, bool flow, bool leadingSpace)
        {
            var sp = leadingSpace ? " " : "";
            if (flow || !value.Contains('\n') || !LiteralSafe(value))
                return sp + (!flow && PlainSafe(value) ? value : DoubleQuoted(value));
            var keep = value.EndsWith('\n');
            var body = keep ? value[..^1] : value;
            var sb = new StringBuilder(sp).Append(keep ? "|" : "|-");
            var pad = Spaces(parentIndent + 2);
            foreach (var line in body.Split('\n'))
                sb.Append(_nl).Append(line.Length == 0 ? "" : pad + line);
            return sb.ToString();
        }

        // ---------------- positions
        private int LineEnd(int at)
        {
            var nl = text.IndexOf('\n', Math.Min(at, text.Length));
            if (nl < 0) return text.Length;
            return nl > 0 && text[nl - 1] == '\r' && nl - 1 >= at ? nl - 1 : nl;
        }

        private int LineStart(int at) => at == 0 ? 0 : text.LastIndexOf('\n', Math.Min(at, text.Length) - 1) + 1;

        private int Column(int at) => at - LineStart(at);

        private int ColonAfter(int at)
        {
            while (at < text.Length && text[at] is ' ' or '\t') at++;
            return at < text.Length && text[at] == ':' ? at : -1;
        }

        private int DashBefore(int at)
        {
            at--;
            while (at >= 0 && text[at] is ' ' or '\t') at--;
            return at >= 0 && text[at] == '-' ? at : -1;
        }

        /// <summary>After <c>|</c>/<c>&gt;</c> and its chomping/indentation indicators.</summary>
        private int BlockHeaderEnd(int at)
        {
            if (at < text.Length && text[at] is '|' or '>') at++;
            while (at < text.Length && (text[at] is '-' or '+' || char.IsAsciiDigit(text[at]))) at++;
            return at;
        }

        /// <summary>The end of a block scalar's last non-blank line: its content lines are those
        /// indented deeper than <paramref name="parentIndent"/> (blank lines in between).</summary>
        private int BlockContentEnd(int headerLineEnd, int parentIndent)
        {
            var end = headerLineEnd;
            var at = headerLineEnd;
            while (at < text.Length)
            {
                var next = text.IndexOf('\n', at);
                if (next < 0) break;
                var start = next + 1;
                var lineEnd = LineEnd(start);
                var line = text[start..lineEnd];
                if (line.Trim(' ', '\t').Length == 0) { at = lineEnd; continue; }
                var indent = line.Length - line.TrimStart(' ').Length;
                if (indent <= parentIndent) break;
                end = at = lineEnd;
            }
            return end;
        }

        /// <summary>The end of the last line a block node's text takes (before any comment lines
        /// that follow it); null when its last value is an alias, whose position is unknown.</summary>
        public int? LastLineEnd(YamlNode node) => LastLineEnd(node, depth: 0);

        private int? LastLineEnd(YamlNode node, int depth)
        {
            if (depth > 128) return null;
            switch (node)
            {
                case YamlMappingNode { Style: MappingStyle.Flow } or YamlSequenceNode { Style: SequenceStyle.Flow }:
                    return LineEnd(Math.Max(0, (int)node.End.Index - 1));
                case YamlMappingNode m when m.Children.Count > 0:
                {
                    var (k, v) = m.Children.Last();
                    if (IsAliasUse(k, v)) return LineEnd((int)k.End.Index); // `key: *name` on one line
                    if (v is YamlScalarNode s) return ScalarLastLineEnd(s, Column((int)k.Start.Index), k as YamlScalarNode);
                    return LastLineEnd(v, depth + 1);
                }
                case YamlSequenceNode q when q.Children.Count > 0:
                {
                    var last = q.Children[^1];
                    if (q.Children.Count > 1 && (int)last.Start.Index < (int)q.Children[^2].End.Index) return null;
                    if (q.Children.Count == 1 && (int)last.Start.Index < (int)q.Start.Index) return null;
                    if (last is YamlScalarNode s)
                    {
                        var dash = DashBefore((int)s.Start.Index);
                        return dash < 0 ? null : ScalarLastLineEnd(s, Column(dash), null);
                    }
                    return LastLineEnd(last, depth + 1);
                }
                case YamlScalarNode s:
                    return ScalarLastLineEnd(s, Column((int)s.Start.Index), null);
                default:
                    return null;
            }
        }

        private int? ScalarLastLineEnd(YamlScalarNode s, int parentIndent, YamlScalarNode? key)
        {
            if (IsEmptyPlain(s)) return key is null ? null : LineEnd((int)key.End.Index);
            if (s.Style is ScalarStyle.Literal or ScalarStyle.Folded) return BlockContentEnd(LineEnd((int)s.Start.Index), parentIndent);
            return LineEnd((int)s.End.Index);
        }
    }

    /// <summary>List items whose text is <c>key=...</c> (or just <c>key</c>); more than one, an
    /// alias or a non-scalar among them is an error.</summary>
    private static (YamlScalarNode? Found, string? Error) ListItems(YamlSequenceNode list, string key)
    {
        YamlScalarNode? found = null;
        YamlNode? previous = null;
        foreach (var item in list.Children)
        {
            var alias = previous is not null ? item.Start.Index < previous.End.Index : item.Start.Index < list.Start.Index;
            previous = item;
            if (item is not YamlScalarNode s) continue;
            var text = s.Value ?? "";
            var eq = text.IndexOf('=');
            if ((eq < 0 ? text : text[..eq]) != key) continue;
            if (alias || !s.Anchor.IsEmpty) return (null, $"label `{Echo(key)}` is an alias or carries an anchor: not edited");
            if (found is not null) return (null, $"label `{Echo(key)}` is listed more than once: edit by hand");
            found = s;
        }
        return (found, null);
    }

    private static (YamlScalarNode Key, YamlNode Value)? FindKey(YamlMappingNode map, string key)
    {
        foreach (var (k, v) in map.Children)
            if (k is YamlScalarNode s && s.Value == key) return (s, v);
        return null;
    }

    private static bool IsEmptyPlain(YamlScalarNode s) => s.Style is ScalarStyle.Plain or ScalarStyle.Any && string.IsNullOrEmpty(s.Value);

    private static bool IsBlankOrComment(string rest)
    {
        var t = rest.TrimStart(' ', '\t');
        return t.Length == 0 || t[0] == '#';
    }

    // ------------------------------------------------------------------ scalars

    private static readonly Regex Plain = new(@"^[A-Za-z_][A-Za-z0-9_.\-/=@+]*$", RegexOptions.CultureInvariant);
    private static readonly HashSet<string> Ambiguous = new(StringComparer.OrdinalIgnoreCase)
        { "true", "false", "yes", "no", "on", "off", "y", "n", "null", "nan", "inf" };

    /// <summary>Written plain, YAML 1.1 and 1.2 both read it back as this string.</summary>
    private static bool PlainSafe(string s) => s.Length is > 0 and <= 1024 && Plain.IsMatch(s) && !Ambiguous.Contains(s);

    private static string Key(string k) => PlainSafe(k) ? k : DoubleQuoted(k);

    /// <summary>A literal block scalar reads back as exactly this: printable characters only, no
    /// carriage return or other line break than \n, a first line that does not start with a space (it would set the
    /// indentation), at most one final line break (more would need keep chomping, which would
    /// swallow the blank lines after it).</summary>
    private static bool LiteralSafe(string v)
    {
        if (v.EndsWith("\n\n", StringComparison.Ordinal) || v.Contains('\r')) return false;
        var firstLine = v.Split('\n').FirstOrDefault(l => l.Length > 0) ?? "";
        if (firstLine.StartsWith(' ') || firstLine.StartsWith('\t')) return false;
        if (v.Split('\n').Any(l => l.Length > 0 && l.Trim(' ', '\t').Length == 0)) return false; // whitespace-only lines
        foreach (var c in v)
            if (c is not ('\n' or '\t') && (c < 0x20 || c is '\u007f' or '\ufeff' || (c >= 0x80 && c < 0xa0) || c is '\u2028' or '\u2029' or '\ufffe' or '\uffff'))
                return false;
        return true;
    }

    public static string DoubleQuoted(string v)
    {
        var sb = new StringBuilder(v.Length + 2).Append('"');
        foreach (var c in v)
            sb.Append(c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\t' => "\\t",
                '\r' => "\\r",
                // controls, and what YAML 1.1 reads as line breaks (NEL, LS, PS), escaped
                _ when c < 0x20 || c == '\u007f' || (c >= 0x80 && c < 0xa0) || c is '\u2028' or '\u2029' or '\ufeff' or '\ufffe' or '\uffff' => $"\\u{(int)c:x4}",
                _ => c.ToString(),
            });
        return sb.Append('"').ToString();
    }

    // ------------------------------------------------------------------ verification

    private static string? Verify(string text, string service, List<KeyValuePair<string, string>> wanted, ComposeFile.Result before)
    {
        var after = ComposeFile.Parse(text, "compose");
        if (after.Error is { } e) return e;
        if (after.Project != before.Project) return "the project name changed";
        if (after.Services.Length != before.Services.Length) return "the number of services changed";
        var byName = new Dictionary<string, ComposeService>(StringComparer.Ordinal);
        foreach (var s in after.Services) byName.TryAdd(s.Name, s);
        foreach (var old in before.Services)
        {
            if (!byName.TryGetValue(old.Name, out var now)) return $"service `{Echo(old.Name)}` is gone";
            var expected = old.Labels.ToDictionary(x => x.Key, x => x.Value);
            if (old.Name == service)
                foreach (var (k, v) in wanted) expected[k] = v;
            if (now.Labels.Count != expected.Count || expected.Any(x => !now.Labels.TryGetValue(x.Key, out var v) || v != x.Value))
                return $"service `{Echo(old.Name)}` reads back with other labels than expected";
            if (!now.Ports.SequenceEqual(old.Ports) || now.NetworkMode != old.NetworkMode ||
                !now.NetworksOrDefault.SequenceEqual(old.NetworksOrDefault))
                return $"service `{Echo(old.Name)}` changed beyond its labels";
        }
        return null;
    }

    private static string Echo(string s) => SafeText.Escape(s, 64);

    private static string Spaces(int n) => new(' ', n);
}
