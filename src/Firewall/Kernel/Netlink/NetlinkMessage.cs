using System.Buffers.Binary;
using System.Text;

namespace WhaleWall.Firewall.Kernel.Netlink;

/// <summary>Builds one netlink request: a 16-byte header, the family header, then
/// type-length-value attributes (4-byte aligned), nested ones included.</summary>
internal sealed class NetlinkRequest
{
    private byte[] _buffer = new byte[256];
    private int _length;

    public ushort Type { get; }
    public ushort Flags { get; }

    public NetlinkRequest(ushort type, ushort flags)
    {
        Type = type;
        Flags = flags;
        _length = 16; // struct nlmsghdr, filled in by Finish
    }

    public bool IsDump => (Flags & NetlinkNative.NLM_F_DUMP) == NetlinkNative.NLM_F_DUMP;

    /// <summary>The family header (ifinfomsg, rtgenmsg, nfgenmsg, ...), padded to 4 bytes.</summary>
    public NetlinkRequest Header(ReadOnlySpan<byte> header)
    {
        Append(header);
        Align();
        return this;
    }

    public NetlinkRequest Attr(ushort type, ReadOnlySpan<byte> value)
    {
        Span<byte> head = stackalloc byte[4];
        BinaryPrimitives.WriteUInt16LittleEndian(head, (ushort)(4 + value.Length));
        BinaryPrimitives.WriteUInt16LittleEndian(head[2..], type);
        Append(head);
        Append(value);
        Align();
        return this;
    }

    public NetlinkRequest U8(ushort type, byte value) => Attr(type, [value]);

    public NetlinkRequest U32(ushort type, uint value)
    {
        Span<byte> v = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(v, value);
        return Attr(type, v);
    }

    public NetlinkRequest S32(ushort type, int value) => U32(type, unchecked((uint)value));

    /// <summary>A big-endian (network order) 16-bit value, as ctnetlink wants ports and zones.</summary>
    public NetlinkRequest Be16(ushort type, ushort value)
    {
        Span<byte> v = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(v, value);
        return Attr(type, v);
    }

    public NetlinkRequest Be32(ushort type, uint value)
    {
        Span<byte> v = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(v, value);
        return Attr(type, v);
    }

    /// <summary>A NUL-terminated string attribute.</summary>
    public NetlinkRequest String(ushort type, string value)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(value) + 1];
        Encoding.UTF8.GetBytes(value, bytes);
        return Attr(type, bytes);
    }

    /// <summary>Opens a nested attribute; close it with <see cref="End"/>.</summary>
    public int Begin(ushort type)
    {
        var at = _length;
        Span<byte> head = stackalloc byte[4];
        BinaryPrimitives.WriteUInt16LittleEndian(head[2..], (ushort)(type | NetlinkNative.NLA_F_NESTED));
        Append(head);
        return at;
    }

    public NetlinkRequest End(int begin)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(_buffer.AsSpan(begin), (ushort)(_length - begin));
        return this;
    }

    /// <summary>The message with its header (length, type, flags, sequence number; port id 0).</summary>
    public byte[] Finish(uint seq)
    {
        var span = _buffer.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(span, (uint)_length);
        BinaryPrimitives.WriteUInt16LittleEndian(span[4..], Type);
        BinaryPrimitives.WriteUInt16LittleEndian(span[6..], Flags);
        BinaryPrimitives.WriteUInt32LittleEndian(span[8..], seq);
        BinaryPrimitives.WriteUInt32LittleEndian(span[12..], 0);
        return _buffer.AsSpan(0, _length).ToArray();
    }

    private void Append(ReadOnlySpan<byte> bytes)
    {
        if (_length + bytes.Length > _buffer.Length) Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _length + bytes.Length));
        bytes.CopyTo(_buffer.AsSpan(_length));
        _length += bytes.Length;
    }

    private void Align()
    {
        var padded = (_length + 3) & ~3;
        if (padded > _buffer.Length) Array.Resize(ref _buffer, padded * 2);
        _buffer.AsSpan(_length, padded - _length).Clear();
        _length = padded;
    }
}

/// <summary>One message received: its type and flags, and the payload after the 16-byte header.</summary>
internal sealed record NetlinkMessage(ushort Type, ushort Flags, uint Seq, byte[] Payload)
{
    /// <summary>The attributes after a family header of <paramref name="headerLength"/> bytes.</summary>
    public NetlinkAttributes Attributes(int headerLength) => NetlinkAttributes.Parse(Payload.AsMemory(Align(headerLength)));

    public static int Align(int n) => (n + 3) & ~3;
}

/// <summary>Parsed attributes, by type (flags masked off; the last one of a type wins).
/// Never throws on malformed input: what does not parse is left out.</summary>
internal sealed class NetlinkAttributes
{
    private readonly Dictionary<ushort, ReadOnlyMemory<byte>> _byType = new();

    public static NetlinkAttributes Parse(ReadOnlyMemory<byte> data)
    {
        var result = new NetlinkAttributes();
        var offset = 0;
        var span = data.Span;
        while (offset + 4 <= span.Length)
        {
            var len = BinaryPrimitives.ReadUInt16LittleEndian(span[offset..]);
            var type = (ushort)(BinaryPrimitives.ReadUInt16LittleEndian(span[(offset + 2)..]) & NetlinkNative.NLA_TYPE_MASK);
            if (len < 4 || offset + len > span.Length) break;
            result._byType[type] = data.Slice(offset + 4, len - 4);
            offset += NetlinkMessage.Align(len);
        }
        return result;
    }

    public bool Has(ushort type) => _byType.ContainsKey(type);

    // (the cast matters: a bare null would become an empty ReadOnlyMemory through its implicit
    // conversion from byte[], and "absent" would read as "present and empty")
    public ReadOnlyMemory<byte>? Bytes(ushort type) => _byType.TryGetValue(type, out var v) ? v : (ReadOnlyMemory<byte>?)null;

    public NetlinkAttributes? Nested(ushort type) => Bytes(type) is { } v ? Parse(v) : null;

    public uint? U32(ushort type) => Bytes(type) is { Length: >= 4 } v ? BinaryPrimitives.ReadUInt32LittleEndian(v.Span) : null;

    public int? S32(ushort type) => U32(type) is { } v ? unchecked((int)v) : null;

    public byte? U8(ushort type) => Bytes(type) is { Length: >= 1 } v ? v.Span[0] : null;

    public ushort? Be16(ushort type) => Bytes(type) is { Length: >= 2 } v ? BinaryPrimitives.ReadUInt16BigEndian(v.Span) : null;

    public uint? Be32(ushort type) => Bytes(type) is { Length: >= 4 } v ? BinaryPrimitives.ReadUInt32BigEndian(v.Span) : null;

    public string? String(ushort type)
    {
        if (Bytes(type) is not { } v) return null;
        var s = v.Span;
        var nul = s.IndexOf((byte)0);
        return Encoding.UTF8.GetString(nul >= 0 ? s[..nul] : s);
    }
}
