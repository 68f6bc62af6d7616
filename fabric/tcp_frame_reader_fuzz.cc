// libFuzzer target for TcpFrameReader, the first code to see a TCP peer's bytes. The input
// becomes a byte stream (raw, or frames with well-formed headers and fuzzed lengths, contents and
// corruptions) written through a real socket pair in fuzzed pieces, and cut by the reader with a
// fuzzed switch from the handshake limit to the full one. Every frame handed out must be exactly
// the next bytes of the stream, and must still be intact once later reads have reused or replaced
// the chunks; nothing may read out of bounds (run under ASan in the suite).
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "fabric/frame.h"
#include "fabric/tcp_frame_reader.h"

namespace amalgam::fabric {
namespace {

// Builds a stream of frames whose headers pass PeekFrameSize (so the reader's size arithmetic is
// exercised), from little specs in the input: 3 bytes per frame (body words, payload length),
// then a fuzzed corruption of one stream byte.
std::vector<uint8_t> FrameStream(const uint8_t* data, size_t size) {
  std::vector<uint8_t> out;
  size_t i = 0;
  while (i + 3 <= size && out.size() < 256 * 1024) {
    FrameHeader h;
    h.body_len = (data[i] % 16) * 8;
    h.payload_len = ((data[i + 1] << 8) | data[i + 2]) % (kMaxPayloadSize + 1);
    i += 3;
    uint8_t header[kFrameHeaderSize];
    WriteFrameHeader(h, header);
    out.insert(out.end(), header, header + kFrameHeaderSize);
    out.resize(out.size() + h.body_len + h.payload_len + kFrameMacSize, static_cast<uint8_t>(i));
  }
  if (i + 2 <= size && !out.empty()) out[(data[i] << 8 | data[i + 1]) % out.size()] ^= 0xff;
  return out;
}

void Run(const uint8_t* data, size_t size) {
  if (size < 3) return;
  const bool synthesize = data[0] & 1;
  const unsigned handshake_frames = (data[0] >> 1) & 3;
  const uint8_t piece_seed = data[1];
  data += 2;
  size -= 2;
  std::vector<uint8_t> stream =
      synthesize ? FrameStream(data, size) : std::vector<uint8_t>(data, data + size);
  int fd[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fd) != 0) abort();
  TcpFrameReader reader;
  std::vector<FrameBuffer> frames;
  std::vector<size_t> offsets;
  size_t written = 0, consumed = 0, piece = 1 + piece_seed;
  bool closed = false, bad = false;
  while (!bad) {
    if (written < stream.size()) {
      piece = piece * 1103515245 + 12345;
      size_t n = std::min(stream.size() - written, 1 + (piece >> 8) % 9000);
      ssize_t w = ::write(fd[1], stream.data() + written, n);
      if (w > 0) written += w;
    } else if (!closed) {
      ::close(fd[1]);
      closed = true;
    }
    for (;;) {
      const size_t max_frame = frames.size() < handshake_frames ? 512 : kMaxFrameSize;
      FrameBuffer f;
      DropReason why;
      auto t = reader.TakeFrame(max_frame, DropReason::kHandshake, &f, &why);
      if (t == TcpFrameReader::Take::kBad) {
        bad = true;
        break;
      }
      if (t == TcpFrameReader::Take::kFrame) {
        if (f.size() > max_frame || consumed + f.size() > written ||
            std::memcmp(f.data(), stream.data() + consumed, f.size()) != 0) {
          abort();  // not the next bytes of the stream
        }
        offsets.push_back(consumed);
        consumed += f.size();
        frames.push_back(std::move(f));
        continue;
      }
      auto fill = reader.FillFrom(fd[0], max_frame);
      if (fill == TcpFrameReader::Fill::kWouldBlock) break;
      if (fill == TcpFrameReader::Fill::kClosed) {
        bad = true;  // EOF after the whole stream: done
        break;
      }
    }
  }
  for (size_t i = 0; i < frames.size(); ++i) {  // held frames survived later reads
    if (std::memcmp(frames[i].data(), stream.data() + offsets[i], frames[i].size()) != 0) abort();
  }
  ::close(fd[0]);
  if (!closed) ::close(fd[1]);
}

}  // namespace
}  // namespace amalgam::fabric

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  amalgam::fabric::Run(data, size);
  return 0;
}
