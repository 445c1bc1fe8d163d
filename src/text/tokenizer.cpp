#include "text/tokenizer.hpp"

#include <algorithm>
#include <array>
#include <climits>
#include <fstream>
#include <mutex>
#include <shared_mutex>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/error.hpp"

namespace synth {
namespace {

struct LowerRun {
  uint32_t first, last;
  int32_t stride, delta;
};

// The tables below were generated from Python's unicodedata (the library the reference tokenizer
// uses for the same decisions); they are data, not logic.
// Unicode 14.0.0 general categories of the BMP as runs: kRunStart[i] is the first code point of run i,
// kRunClass[i] its class: L = letter (\p{L}), N = number (\p{N}), S = white space (Zs, Zl, Zp,
// \t \n \r), R = removed by the clean-up (Cc, Cf, Cs, Co, Cn other than \t \n \r; U+0000; U+FFFD),
// O = anything else (punctuation, symbols, marks).
constexpr uint16_t kRunStart[1136] = {
    0x0000, 0x0009, 0x000B, 0x000D, 0x000E, 0x0020, 0x0021, 0x0030, 0x003A, 0x0041, 0x005B, 0x0061,
    0x007B, 0x007F, 0x00A0, 0x00A1, 0x00AA, 0x00AB, 0x00AD, 0x00AE, 0x00B2, 0x00B4, 0x00B5, 0x00B6,
    0x00B9, 0x00BA, 0x00BB, 0x00BC, 0x00BF, 0x00C0, 0x00D7, 0x00D8, 0x00F7, 0x00F8, 0x02C2, 0x02C6,
    0x02D2, 0x02E0, 0x02E5, 0x02EC, 0x02ED, 0x02EE, 0x02EF, 0x0370, 0x0375, 0x0376, 0x0378, 0x037A,
    0x037E, 0x037F, 0x0380, 0x0384, 0x0386, 0x0387, 0x0388, 0x038B, 0x038C, 0x038D, 0x038E, 0x03A2,
    0x03A3, 0x03F6, 0x03F7, 0x0482, 0x048A, 0x0530, 0x0531, 0x0557, 0x0559, 0x055A, 0x0560, 0x0589,
    0x058B, 0x058D, 0x0590, 0x0591, 0x05C8, 0x05D0, 0x05EB, 0x05EF, 0x05F3, 0x05F5, 0x0606, 0x061C,
    0x061D, 0x0620, 0x064B, 0x0660, 0x066A, 0x066E, 0x0670, 0x0671, 0x06D4, 0x06D5, 0x06D6, 0x06DD,
    0x06DE, 0x06E5, 0x06E7, 0x06EE, 0x06F0, 0x06FA, 0x06FD, 0x06FF, 0x0700, 0x070E, 0x0710, 0x0711,
    0x0712, 0x0730, 0x074B, 0x074D, 0x07A6, 0x07B1, 0x07B2, 0x07C0, 0x07CA, 0x07EB, 0x07F4, 0x07F6,
    0x07FA, 0x07FB, 0x07FD, 0x0800, 0x0816, 0x081A, 0x081B, 0x0824, 0x0825, 0x0828, 0x0829, 0x082E,
    0x0830, 0x083F, 0x0840, 0x0859, 0x085C, 0x085E, 0x085F, 0x0860, 0x086B, 0x0870, 0x0888, 0x0889,
    0x088F, 0x0898, 0x08A0, 0x08CA, 0x08E2, 0x08E3, 0x0904, 0x093A, 0x093D, 0x093E, 0x0950, 0x0951,
    0x0958, 0x0962, 0x0966, 0x0970, 0x0971, 0x0981, 0x0984, 0x0985, 0x098D, 0x098F, 0x0991, 0x0993,
    0x09A9, 0x09AA, 0x09B1, 0x09B2, 0x09B3, 0x09B6, 0x09BA, 0x09BC, 0x09BD, 0x09BE, 0x09C5, 0x09C7,
    0x09C9, 0x09CB, 0x09CE, 0x09CF, 0x09D7, 0x09D8, 0x09DC, 0x09DE, 0x09DF, 0x09E2, 0x09E4, 0x09E6,
    0x09F0, 0x09F2, 0x09F4, 0x09FA, 0x09FC, 0x09FD, 0x09FF, 0x0A01, 0x0A04, 0x0A05, 0x0A0B, 0x0A0F,
    0x0A11, 0x0A13, 0x0A29, 0x0A2A, 0x0A31, 0x0A32, 0x0A34, 0x0A35, 0x0A37, 0x0A38, 0x0A3A, 0x0A3C,
    0x0A3D, 0x0A3E, 0x0A43, 0x0A47, 0x0A49, 0x0A4B, 0x0A4E, 0x0A51, 0x0A52, 0x0A59, 0x0A5D, 0x0A5E,
    0x0A5F, 0x0A66, 0x0A70, 0x0A72, 0x0A75, 0x0A77, 0x0A81, 0x0A84, 0x0A85, 0x0A8E, 0x0A8F, 0x0A92,
    0x0A93, 0x0AA9, 0x0AAA, 0x0AB1, 0x0AB2, 0x0AB4, 0x0AB5, 0x0ABA, 0x0ABC, 0x0ABD, 0x0ABE, 0x0AC6,
    0x0AC7, 0x0ACA, 0x0ACB, 0x0ACE, 0x0AD0, 0x0AD1, 0x0AE0, 0x0AE2, 0x0AE4, 0x0AE6, 0x0AF0, 0x0AF2,
    0x0AF9, 0x0AFA, 0x0B00, 0x0B01, 0x0B04, 0x0B05, 0x0B0D, 0x0B0F, 0x0B11, 0x0B13, 0x0B29, 0x0B2A,
    0x0B31, 0x0B32, 0x0B34, 0x0B35, 0x0B3A, 0x0B3C, 0x0B3D, 0x0B3E, 0x0B45, 0x0B47, 0x0B49, 0x0B4B,
    0x0B4E, 0x0B55, 0x0B58, 0x0B5C, 0x0B5E, 0x0B5F, 0x0B62, 0x0B64, 0x0B66, 0x0B70, 0x0B71, 0x0B72,
    0x0B78, 0x0B82, 0x0B83, 0x0B84, 0x0B85, 0x0B8B, 0x0B8E, 0x0B91, 0x0B92, 0x0B96, 0x0B99, 0x0B9B,
    0x0B9C, 0x0B9D, 0x0B9E, 0x0BA0, 0x0BA3, 0x0BA5, 0x0BA8, 0x0BAB, 0x0BAE, 0x0BBA, 0x0BBE, 0x0BC3,
    0x0BC6, 0x0BC9, 0x0BCA, 0x0BCE, 0x0BD0, 0x0BD1, 0x0BD7, 0x0BD8, 0x0BE6, 0x0BF3, 0x0BFB, 0x0C00,
    0x0C05, 0x0C0D, 0x0C0E, 0x0C11, 0x0C12, 0x0C29, 0x0C2A, 0x0C3A, 0x0C3C, 0x0C3D, 0x0C3E, 0x0C45,
    0x0C46, 0x0C49, 0x0C4A, 0x0C4E, 0x0C55, 0x0C57, 0x0C58, 0x0C5B, 0x0C5D, 0x0C5E, 0x0C60, 0x0C62,
    0x0C64, 0x0C66, 0x0C70, 0x0C77, 0x0C78, 0x0C7F, 0x0C80, 0x0C81, 0x0C85, 0x0C8D, 0x0C8E, 0x0C91,
    0x0C92, 0x0CA9, 0x0CAA, 0x0CB4, 0x0CB5, 0x0CBA, 0x0CBC, 0x0CBD, 0x0CBE, 0x0CC5, 0x0CC6, 0x0CC9,
    0x0CCA, 0x0CCE, 0x0CD5, 0x0CD7, 0x0CDD, 0x0CDF, 0x0CE0, 0x0CE2, 0x0CE4, 0x0CE6, 0x0CF0, 0x0CF1,
    0x0CF3, 0x0D00, 0x0D04, 0x0D0D, 0x0D0E, 0x0D11, 0x0D12, 0x0D3B, 0x0D3D, 0x0D3E, 0x0D45, 0x0D46,
    0x0D49, 0x0D4A, 0x0D4E, 0x0D4F, 0x0D50, 0x0D54, 0x0D57, 0x0D58, 0x0D5F, 0x0D62, 0x0D64, 0x0D66,
    0x0D79, 0x0D7A, 0x0D80, 0x0D81, 0x0D84, 0x0D85, 0x0D97, 0x0D9A, 0x0DB2, 0x0DB3, 0x0DBC, 0x0DBD,
    0x0DBE, 0x0DC0, 0x0DC7, 0x0DCA, 0x0DCB, 0x0DCF, 0x0DD5, 0x0DD6, 0x0DD7, 0x0DD8, 0x0DE0, 0x0DE6,
    0x0DF0, 0x0DF2, 0x0DF5, 0x0E01, 0x0E31, 0x0E32, 0x0E34, 0x0E3B, 0x0E3F, 0x0E40, 0x0E47, 0x0E50,
    0x0E5A, 0x0E5C, 0x0E81, 0x0E83, 0x0E84, 0x0E85, 0x0E86, 0x0E8B, 0x0E8C, 0x0EA4, 0x0EA5, 0x0EA6,
    0x0EA7, 0x0EB1, 0x0EB2, 0x0EB4, 0x0EBD, 0x0EBE, 0x0EC0, 0x0EC5, 0x0EC6, 0x0EC7, 0x0EC8, 0x0ECE,
    0x0ED0, 0x0EDA, 0x0EDC, 0x0EE0, 0x0F00, 0x0F01, 0x0F20, 0x0F34, 0x0F40, 0x0F48, 0x0F49, 0x0F6D,
    0x0F71, 0x0F88, 0x0F8D, 0x0F98, 0x0F99, 0x0FBD, 0x0FBE, 0x0FCD, 0x0FCE, 0x0FDB, 0x1000, 0x102B,
    0x103F, 0x1040, 0x104A, 0x1050, 0x1056, 0x105A, 0x105E, 0x1061, 0x1062, 0x1065, 0x1067, 0x106E,
    0x1071, 0x1075, 0x1082, 0x108E, 0x108F, 0x1090, 0x109A, 0x10A0, 0x10C6, 0x10C7, 0x10C8, 0x10CD,
    0x10CE, 0x10D0, 0x10FB, 0x10FC, 0x1249, 0x124A, 0x124E, 0x1250, 0x1257, 0x1258, 0x1259, 0x125A,
    0x125E, 0x1260, 0x1289, 0x128A, 0x128E, 0x1290, 0x12B1, 0x12B2, 0x12B6, 0x12B8, 0x12BF, 0x12C0,
    0x12C1, 0x12C2, 0x12C6, 0x12C8, 0x12D7, 0x12D8, 0x1311, 0x1312, 0x1316, 0x1318, 0x135B, 0x135D,
    0x1369, 0x137D, 0x1380, 0x1390, 0x139A, 0x13A0, 0x13F6, 0x13F8, 0x13FE, 0x1400, 0x1401, 0x166D,
    0x166F, 0x1680, 0x1681, 0x169B, 0x169D, 0x16A0, 0x16EB, 0x16EE, 0x16F1, 0x16F9, 0x1700, 0x1712,
    0x1716, 0x171F, 0x1732, 0x1737, 0x1740, 0x1752, 0x1754, 0x1760, 0x176D, 0x176E, 0x1771, 0x1772,
    0x1774, 0x1780, 0x17B4, 0x17D7, 0x17D8, 0x17DC, 0x17DD, 0x17DE, 0x17E0, 0x17EA, 0x17F0, 0x17FA,
    0x1800, 0x180E, 0x180F, 0x1810, 0x181A, 0x1820, 0x1879, 0x1880, 0x1885, 0x1887, 0x18A9, 0x18AA,
    0x18AB, 0x18B0, 0x18F6, 0x1900, 0x191F, 0x1920, 0x192C, 0x1930, 0x193C, 0x1940, 0x1941, 0x1944,
    0x1946, 0x1950, 0x196E, 0x1970, 0x1975, 0x1980, 0x19AC, 0x19B0, 0x19CA, 0x19D0, 0x19DB, 0x19DE,
    0x1A00, 0x1A17, 0x1A1C, 0x1A1E, 0x1A20, 0x1A55, 0x1A5F, 0x1A60, 0x1A7D, 0x1A7F, 0x1A80, 0x1A8A,
    0x1A90, 0x1A9A, 0x1AA0, 0x1AA7, 0x1AA8, 0x1AAE, 0x1AB0, 0x1ACF, 0x1B00, 0x1B05, 0x1B34, 0x1B45,
    0x1B4D, 0x1B50, 0x1B5A, 0x1B7F, 0x1B80, 0x1B83, 0x1BA1, 0x1BAE, 0x1BB0, 0x1BBA, 0x1BE6, 0x1BF4,
    0x1BFC, 0x1C00, 0x1C24, 0x1C38, 0x1C3B, 0x1C40, 0x1C4A, 0x1C4D, 0x1C50, 0x1C5A, 0x1C7E, 0x1C80,
    0x1C89, 0x1C90, 0x1CBB, 0x1CBD, 0x1CC0, 0x1CC8, 0x1CD0, 0x1CE9, 0x1CED, 0x1CEE, 0x1CF4, 0x1CF5,
    0x1CF7, 0x1CFA, 0x1CFB, 0x1D00, 0x1DC0, 0x1E00, 0x1F16, 0x1F18, 0x1F1E, 0x1F20, 0x1F46, 0x1F48,
    0x1F4E, 0x1F50, 0x1F58, 0x1F59, 0x1F5A, 0x1F5B, 0x1F5C, 0x1F5D, 0x1F5E, 0x1F5F, 0x1F7E, 0x1F80,
    0x1FB5, 0x1FB6, 0x1FBD, 0x1FBE, 0x1FBF, 0x1FC2, 0x1FC5, 0x1FC6, 0x1FCD, 0x1FD0, 0x1FD4, 0x1FD6,
    0x1FDC, 0x1FDD, 0x1FE0, 0x1FED, 0x1FF0, 0x1FF2, 0x1FF5, 0x1FF6, 0x1FFD, 0x1FFF, 0x2000, 0x200B,
    0x2010, 0x2028, 0x202A, 0x202F, 0x2030, 0x205F, 0x2060, 0x2070, 0x2071, 0x2072, 0x2074, 0x207A,
    0x207F, 0x2080, 0x208A, 0x208F, 0x2090, 0x209D, 0x20A0, 0x20C1, 0x20D0, 0x20F1, 0x2100, 0x2102,
    0x2103, 0x2107, 0x2108, 0x210A, 0x2114, 0x2115, 0x2116, 0x2119, 0x211E, 0x2124, 0x2125, 0x2126,
    0x2127, 0x2128, 0x2129, 0x212A, 0x212E, 0x212F, 0x213A, 0x213C, 0x2140, 0x2145, 0x214A, 0x214E,
    0x214F, 0x2150, 0x2183, 0x2185, 0x218A, 0x218C, 0x2190, 0x2427, 0x2440, 0x244B, 0x2460, 0x249C,
    0x24EA, 0x2500, 0x2776, 0x2794, 0x2B74, 0x2B76, 0x2B96, 0x2B97, 0x2C00, 0x2CE5, 0x2CEB, 0x2CEF,
    0x2CF2, 0x2CF4, 0x2CF9, 0x2CFD, 0x2CFE, 0x2D00, 0x2D26, 0x2D27, 0x2D28, 0x2D2D, 0x2D2E, 0x2D30,
    0x2D68, 0x2D6F, 0x2D70, 0x2D71, 0x2D7F, 0x2D80, 0x2D97, 0x2DA0, 0x2DA7, 0x2DA8, 0x2DAF, 0x2DB0,
    0x2DB7, 0x2DB8, 0x2DBF, 0x2DC0, 0x2DC7, 0x2DC8, 0x2DCF, 0x2DD0, 0x2DD7, 0x2DD8, 0x2DDF, 0x2DE0,
    0x2E2F, 0x2E30, 0x2E5E, 0x2E80, 0x2E9A, 0x2E9B, 0x2EF4, 0x2F00, 0x2FD6, 0x2FF0, 0x2FFC, 0x3000,
    0x3001, 0x3005, 0x3007, 0x3008, 0x3021, 0x302A, 0x3031, 0x3036, 0x3038, 0x303B, 0x303D, 0x3040,
    0x3041, 0x3097, 0x3099, 0x309D, 0x30A0, 0x30A1, 0x30FB, 0x30FC, 0x3100, 0x3105, 0x3130, 0x3131,
    0x318F, 0x3190, 0x3192, 0x3196, 0x31A0, 0x31C0, 0x31E4, 0x31F0, 0x3200, 0x321F, 0x3220, 0x322A,
    0x3248, 0x3250, 0x3251, 0x3260, 0x3280, 0x328A, 0x32B1, 0x32C0, 0x3400, 0x4DC0, 0x4E00, 0xA48D,
    0xA490, 0xA4C7, 0xA4D0, 0xA4FE, 0xA500, 0xA60D, 0xA610, 0xA620, 0xA62A, 0xA62C, 0xA640, 0xA66F,
    0xA67F, 0xA69E, 0xA6A0, 0xA6E6, 0xA6F0, 0xA6F8, 0xA700, 0xA717, 0xA720, 0xA722, 0xA789, 0xA78B,
    0xA7CB, 0xA7D0, 0xA7D2, 0xA7D3, 0xA7D4, 0xA7D5, 0xA7DA, 0xA7F2, 0xA802, 0xA803, 0xA806, 0xA807,
    0xA80B, 0xA80C, 0xA823, 0xA82D, 0xA830, 0xA836, 0xA83A, 0xA840, 0xA874, 0xA878, 0xA880, 0xA882,
    0xA8B4, 0xA8C6, 0xA8CE, 0xA8D0, 0xA8DA, 0xA8E0, 0xA8F2, 0xA8F8, 0xA8FB, 0xA8FC, 0xA8FD, 0xA8FF,
    0xA900, 0xA90A, 0xA926, 0xA930, 0xA947, 0xA954, 0xA95F, 0xA960, 0xA97D, 0xA980, 0xA984, 0xA9B3,
    0xA9CE, 0xA9CF, 0xA9D0, 0xA9DA, 0xA9DE, 0xA9E0, 0xA9E5, 0xA9E6, 0xA9F0, 0xA9FA, 0xA9FF, 0xAA00,
    0xAA29, 0xAA37, 0xAA40, 0xAA43, 0xAA44, 0xAA4C, 0xAA4E, 0xAA50, 0xAA5A, 0xAA5C, 0xAA60, 0xAA77,
    0xAA7A, 0xAA7B, 0xAA7E, 0xAAB0, 0xAAB1, 0xAAB2, 0xAAB5, 0xAAB7, 0xAAB9, 0xAABE, 0xAAC0, 0xAAC1,
    0xAAC2, 0xAAC3, 0xAADB, 0xAADE, 0xAAE0, 0xAAEB, 0xAAF2, 0xAAF5, 0xAAF7, 0xAB01, 0xAB07, 0xAB09,
    0xAB0F, 0xAB11, 0xAB17, 0xAB20, 0xAB27, 0xAB28, 0xAB2F, 0xAB30, 0xAB5B, 0xAB5C, 0xAB6A, 0xAB6C,
    0xAB70, 0xABE3, 0xABEE, 0xABF0, 0xABFA, 0xAC00, 0xD7A4, 0xD7B0, 0xD7C7, 0xD7CB, 0xD7FC, 0xF900,
    0xFA6E, 0xFA70, 0xFADA, 0xFB00, 0xFB07, 0xFB13, 0xFB18, 0xFB1D, 0xFB1E, 0xFB1F, 0xFB29, 0xFB2A,
    0xFB37, 0xFB38, 0xFB3D, 0xFB3E, 0xFB3F, 0xFB40, 0xFB42, 0xFB43, 0xFB45, 0xFB46, 0xFBB2, 0xFBC3,
    0xFBD3, 0xFD3E, 0xFD50, 0xFD90, 0xFD92, 0xFDC8, 0xFDCF, 0xFDD0, 0xFDF0, 0xFDFC, 0xFE1A, 0xFE20,
    0xFE53, 0xFE54, 0xFE67, 0xFE68, 0xFE6C, 0xFE70, 0xFE75, 0xFE76, 0xFEFD, 0xFF01, 0xFF10, 0xFF1A,
    0xFF21, 0xFF3B, 0xFF41, 0xFF5B, 0xFF66, 0xFFBF, 0xFFC2, 0xFFC8, 0xFFCA, 0xFFD0, 0xFFD2, 0xFFD8,
    0xFFDA, 0xFFDD, 0xFFE0, 0xFFE7, 0xFFE8, 0xFFEF, 0xFFFC, 0xFFFD,
};
constexpr char kRunClass[] =
    "RSRSRSONOLOLORSOLORONOLONLONOLOLOLOLOLOLOLOLOLRLOLROLOLRLRLRLOLOLRLRLOLORORORLRLOROROLONOLOLOLOR"
    "OLOLNLOLORLOLORLOLRNLOLOLROLOLOLOLORORLORORLRLOLROLOROLOLOLOLONOLORLRLRLRLRLRLROLOROROLRORLRLORN"
    "LONOLORORLRLRLRLRLRLRLRORORORORORLRLRNOLORORLRLRLRLRLRLROLORORORLRLORNORLORORLRLRLRLRLRLROLORORO"
    "RORLRLORNOLNROLRLRLRLRLRLRLRLRLRLRORORORLRORNOROLRLRLRLROLORORORORLRLRLORNRONOLOLRLRLRLRLROLOROR"
    "ORORLRLORNRLROLRLRLOLOROROLORLONLORNOLRORLRLRLRLRLRORORORORNRORLOLOROLONORLRLRLRLRLRLOLOLRLRLROR"
    "NRLRLONOLRLROLORORORORLOLNOLOLOLOLOLOLOLONOLRLRLRLOLRLRLRLRLRLRLRLRLRLRLRLRLRLRLRLRONRLORLRLROLO"
    "LSLORLONLRLORLORLORLRLRORLOLOLORNRNRORONRLRLOLOLRLRLRORORORONLRLRLRLRNROLOROLORORONRNROLOROROLOL"
    "RNOROLOLNLOROLORONRLNLOLRLRLOROLOLOLOLRLOLRLRLRLRLRLRLRLRLRLRLOLOLRLOLRLROLORLRLORSROSRSOSRNLRNO"
    "LNORLROROROLOLOLOLOLOLOLOLOLOLOLOLOLONLNORORORNONONOROROLOLOLRONOLRLRLRLRLOROLRLRLRLRLRLRLRLRLRO"
    "LORORORORORSOLNONOLONLORLROLOLOLRLRLRONOLORLORNONONONONOLOLRORLOLOLNLRLOLOLNOROLOLOLRLRLRLRLOLOL"
    "OLORNORLOROLORONROLOLOLONLOLOROLROLORLNROLOLNLRLORLOLORNROLOLOLOLOLOLOLOLRLOLOLORLRLRLRLRLRLOLOR"
    "LORNRLRLRLRLRLRLRLRLOLOLRLRLRLRLRLORLOLRLRORLORORORORLRLRONOLOLOLRLRLRLRLROROROR";
// Simple lower-case mappings of the BMP (str.lower() where it yields one code point) as runs
// {first, last, stride, delta}: code points first, first+stride, ..., last map to cp + delta.
constexpr LowerRun kLowerRuns[171] = {
    {0x0041, 0x005A, 1, 32}, {0x00C0, 0x00D6, 1, 32}, {0x00D8, 0x00DE, 1, 32}, {0x0100, 0x012E, 2, 1},
    {0x0132, 0x0136, 2, 1}, {0x0139, 0x0147, 2, 1}, {0x014A, 0x0176, 2, 1}, {0x0178, 0x0178, 1, -121},
    {0x0179, 0x017D, 2, 1}, {0x0181, 0x0181, 1, 210}, {0x0182, 0x0184, 2, 1}, {0x0186, 0x0186, 1, 206},
    {0x0187, 0x0187, 1, 1}, {0x0189, 0x018A, 1, 205}, {0x018B, 0x018B, 1, 1}, {0x018E, 0x018E, 1, 79},
    {0x018F, 0x018F, 1, 202}, {0x0190, 0x0190, 1, 203}, {0x0191, 0x0191, 1, 1}, {0x0193, 0x0193, 1, 205},
    {0x0194, 0x0194, 1, 207}, {0x0196, 0x0196, 1, 211}, {0x0197, 0x0197, 1, 209}, {0x0198, 0x0198, 1, 1},
    {0x019C, 0x019C, 1, 211}, {0x019D, 0x019D, 1, 213}, {0x019F, 0x019F, 1, 214}, {0x01A0, 0x01A4, 2, 1},
    {0x01A6, 0x01A6, 1, 218}, {0x01A7, 0x01A7, 1, 1}, {0x01A9, 0x01A9, 1, 218}, {0x01AC, 0x01AC, 1, 1},
    {0x01AE, 0x01AE, 1, 218}, {0x01AF, 0x01AF, 1, 1}, {0x01B1, 0x01B2, 1, 217}, {0x01B3, 0x01B5, 2, 1},
    {0x01B7, 0x01B7, 1, 219}, {0x01B8, 0x01B8, 1, 1}, {0x01BC, 0x01BC, 1, 1}, {0x01C4, 0x01C4, 1, 2},
    {0x01C5, 0x01C5, 1, 1}, {0x01C7, 0x01C7, 1, 2}, {0x01C8, 0x01C8, 1, 1}, {0x01CA, 0x01CA, 1, 2},
    {0x01CB, 0x01DB, 2, 1}, {0x01DE, 0x01EE, 2, 1}, {0x01F1, 0x01F1, 1, 2}, {0x01F2, 0x01F4, 2, 1},
    {0x01F6, 0x01F6, 1, -97}, {0x01F7, 0x01F7, 1, -56}, {0x01F8, 0x021E, 2, 1}, {0x0220, 0x0220, 1, -130},
    {0x0222, 0x0232, 2, 1}, {0x023A, 0x023A, 1, 10795}, {0x023B, 0x023B, 1, 1}, {0x023D, 0x023D, 1, -163},
    {0x023E, 0x023E, 1, 10792}, {0x0241, 0x0241, 1, 1}, {0x0243, 0x0243, 1, -195}, {0x0244, 0x0244, 1, 69},
    {0x0245, 0x0245, 1, 71}, {0x0246, 0x024E, 2, 1}, {0x0370, 0x0372, 2, 1}, {0x0376, 0x0376, 1, 1},
    {0x037F, 0x037F, 1, 116}, {0x0386, 0x0386, 1, 38}, {0x0388, 0x038A, 1, 37}, {0x038C, 0x038C, 1, 64},
    {0x038E, 0x038F, 1, 63}, {0x0391, 0x03A1, 1, 32}, {0x03A3, 0x03AB, 1, 32}, {0x03CF, 0x03CF, 1, 8},
    {0x03D8, 0x03EE, 2, 1}, {0x03F4, 0x03F4, 1, -60}, {0x03F7, 0x03F7, 1, 1}, {0x03F9, 0x03F9, 1, -7},
    {0x03FA, 0x03FA, 1, 1}, {0x03FD, 0x03FF, 1, -130}, {0x0400, 0x040F, 1, 80}, {0x0410, 0x042F, 1, 32},
    {0x0460, 0x0480, 2, 1}, {0x048A, 0x04BE, 2, 1}, {0x04C0, 0x04C0, 1, 15}, {0x04C1, 0x04CD, 2, 1},
    {0x04D0, 0x052E, 2, 1}, {0x0531, 0x0556, 1, 48}, {0x10A0, 0x10C5, 1, 7264}, {0x10C7, 0x10C7, 1, 7264},
    {0x10CD, 0x10CD, 1, 7264}, {0x13A0, 0x13EF, 1, 38864}, {0x13F0, 0x13F5, 1, 8}, {0x1C90, 0x1CBA, 1, -3008},
    {0x1CBD, 0x1CBF, 1, -3008}, {0x1E00, 0x1E94, 2, 1}, {0x1E9E, 0x1E9E, 1, -7615}, {0x1EA0, 0x1EFE, 2, 1},
    {0x1F08, 0x1F0F, 1, -8}, {0x1F18, 0x1F1D, 1, -8}, {0x1F28, 0x1F2F, 1, -8}, {0x1F38, 0x1F3F, 1, -8},
    {0x1F48, 0x1F4D, 1, -8}, {0x1F59, 0x1F5F, 2, -8}, {0x1F68, 0x1F6F, 1, -8}, {0x1F88, 0x1F8F, 1, -8},
    {0x1F98, 0x1F9F, 1, -8}, {0x1FA8, 0x1FAF, 1, -8}, {0x1FB8, 0x1FB9, 1, -8}, {0x1FBA, 0x1FBB, 1, -74},
    {0x1FBC, 0x1FBC, 1, -9}, {0x1FC8, 0x1FCB, 1, -86}, {0x1FCC, 0x1FCC, 1, -9}, {0x1FD8, 0x1FD9, 1, -8},
    {0x1FDA, 0x1FDB, 1, -100}, {0x1FE8, 0x1FE9, 1, -8}, {0x1FEA, 0x1FEB, 1, -112}, {0x1FEC, 0x1FEC, 1, -7},
    {0x1FF8, 0x1FF9, 1, -128}, {0x1FFA, 0x1FFB, 1, -126}, {0x1FFC, 0x1FFC, 1, -9}, {0x2126, 0x2126, 1, -7517},
    {0x212A, 0x212A, 1, -8383}, {0x212B, 0x212B, 1, -8262}, {0x2132, 0x2132, 1, 28}, {0x2160, 0x216F, 1, 16},
    {0x2183, 0x2183, 1, 1}, {0x24B6, 0x24CF, 1, 26}, {0x2C00, 0x2C2F, 1, 48}, {0x2C60, 0x2C60, 1, 1},
    {0x2C62, 0x2C62, 1, -10743}, {0x2C63, 0x2C63, 1, -3814}, {0x2C64, 0x2C64, 1, -10727}, {0x2C67, 0x2C6B, 2, 1},
    {0x2C6D, 0x2C6D, 1, -10780}, {0x2C6E, 0x2C6E, 1, -10749}, {0x2C6F, 0x2C6F, 1, -10783}, {0x2C70, 0x2C70, 1, -10782},
    {0x2C72, 0x2C72, 1, 1}, {0x2C75, 0x2C75, 1, 1}, {0x2C7E, 0x2C7F, 1, -10815}, {0x2C80, 0x2CE2, 2, 1},
    {0x2CEB, 0x2CED, 2, 1}, {0x2CF2, 0x2CF2, 1, 1}, {0xA640, 0xA66C, 2, 1}, {0xA680, 0xA69A, 2, 1},
    {0xA722, 0xA72E, 2, 1}, {0xA732, 0xA76E, 2, 1}, {0xA779, 0xA77B, 2, 1}, {0xA77D, 0xA77D, 1, -35332},
    {0xA77E, 0xA786, 2, 1}, {0xA78B, 0xA78B, 1, 1}, {0xA78D, 0xA78D, 1, -42280}, {0xA790, 0xA792, 2, 1},
    {0xA796, 0xA7A8, 2, 1}, {0xA7AA, 0xA7AA, 1, -42308}, {0xA7AB, 0xA7AB, 1, -42319}, {0xA7AC, 0xA7AC, 1, -42315},
    {0xA7AD, 0xA7AD, 1, -42305}, {0xA7AE, 0xA7AE, 1, -42308}, {0xA7B0, 0xA7B0, 1, -42258}, {0xA7B1, 0xA7B1, 1, -42282},
    {0xA7B2, 0xA7B2, 1, -42261}, {0xA7B3, 0xA7B3, 1, 928}, {0xA7B4, 0xA7C2, 2, 1}, {0xA7C4, 0xA7C4, 1, -48},
    {0xA7C5, 0xA7C5, 1, -42307}, {0xA7C6, 0xA7C6, 1, -35384}, {0xA7C7, 0xA7C9, 2, 1}, {0xA7D0, 0xA7D0, 1, 1},
    {0xA7D6, 0xA7D8, 2, 1}, {0xA7F5, 0xA7F5, 1, 1}, {0xFF21, 0xFF3A, 1, 32},
};

constexpr size_t kNumRuns = sizeof(kRunStart) / sizeof(kRunStart[0]);
static_assert(sizeof(kRunClass) - 1 == kNumRuns, "one class per run");

// Class of a code point: 'L' letter, 'N' number, 'S' white space, 'R' removed by the clean-up,
// 'O' other. Beyond the BMP only the CJK extension planes (letters), the tag characters and the
// private-use planes (removed) are told apart.
char char_class(uint32_t cp) {
  if (cp < 0x10000) {
    const size_t run = size_t(std::upper_bound(kRunStart, kRunStart + kNumRuns, cp) - kRunStart) - 1;
    return kRunClass[run];
  }
  if (cp >= 0x20000 && cp <= 0x3FFFF) return 'L';
  if (cp == 0xE0001 || (cp >= 0xE0020 && cp <= 0xE007F) || cp >= 0xF0000) return 'R';
  return 'O';
}

// The CJK Unified Ideographs blocks BERT's basic tokenizer (which HF's slow CLIPTokenizer uses for
// its clean-up) surrounds with spaces.
bool is_cjk_ideograph(uint32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
         (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

uint32_t simple_lower(uint32_t cp) {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  if (cp >= 0x10000) return cp;
  const LowerRun* end = kLowerRuns + sizeof(kLowerRuns) / sizeof(kLowerRuns[0]);
  const LowerRun* it = std::upper_bound(kLowerRuns, end, cp, [](uint32_t c, const LowerRun& r) { return c < r.first; });
  if (it == kLowerRuns) return cp;
  --it;
  if (cp > it->last || (cp - it->first) % uint32_t(it->stride) != 0) return cp;
  return uint32_t(int64_t(cp) + it->delta);
}

// UTF-8 to code points; an invalid or truncated sequence becomes U+FFFD (which the clean-up drops,
// as the reference drops it).
std::vector<uint32_t> decode_utf8(const std::string& s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    int len = 0;
    uint32_t cp = 0, min = 0;
    if (c < 0x80) { cp = c; len = 1; }
    else if ((c & 0xE0) == 0xC0) { cp = c & 0x1F; len = 2; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { cp = c & 0x0F; len = 3; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { cp = c & 0x07; len = 4; min = 0x10000; }
    bool ok = len > 0 && i + size_t(len) <= s.size();
    for (int k = 1; ok && k < len; ++k) {
      const unsigned char cc = static_cast<unsigned char>(s[i + size_t(k)]);
      ok = (cc & 0xC0) == 0x80;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (!ok || cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += size_t(len);
  }
  return out;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

// GPT-2's bytes_to_unicode (Radford et al. 2019): printable bytes map to themselves, the other
// 68 bytes to U+0100.. in byte order, so that every byte string is a string of visible symbols.
std::array<uint32_t, 256> bytes_to_unicode() {
  std::array<uint32_t, 256> map{};
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    map[b] = printable ? b : next++;
  }
  return map;
}

const char* const kStartOfText = "<|startoftext|>";
const char* const kEndOfText = "<|endoftext|>";

bool starts_with_at(const std::vector<uint32_t>& cps, size_t i, const char* ascii) {
  for (size_t k = 0; ascii[k]; ++k)
    if (i + k >= cps.size() || cps[i + k] != uint32_t(static_cast<unsigned char>(ascii[k]))) return false;
  return true;
}

// Merged-pair key: the two symbols' vocabulary ids.
uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

}  // namespace

struct ClipTokenizer::Impl {
  std::unordered_map<std::string, int32_t> vocab;
  std::vector<std::string> id_to_token;
  struct Merge {
    int32_t rank, merged;
  };
  std::unordered_map<uint64_t, Merge> merges;
  std::array<int32_t, 256> byte_id{}, byte_end_id{};  // symbol of one byte, without / with "</w>"
  std::array<uint32_t, 256> byte_encoder{};
  std::unordered_map<uint32_t, uint8_t> byte_decoder;
  int32_t bos = 0, eos = 0;

  // Per-piece BPE results. Prompts repeat the same few thousand words, so after warm-up nearly
  // every piece is a hit; bounded by dropping everything when it grows past kMaxCached.
  static constexpr size_t kMaxCached = size_t(1) << 20;
  mutable std::shared_mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;

  void load(const std::string& vocab_path, const std::string& merges_path);
  std::vector<int32_t> bpe(const std::string& piece) const;
  void append_ids(const std::string& text, std::vector<int32_t>& out) const;
};

void ClipTokenizer::Impl::load(const std::string& vocab_path, const std::string& merges_path) {
  std::ifstream vin(vocab_path, std::ios::binary);
  if (!vin) throw InputError(with_errno(vocab_path + ": cannot open CLIP vocabulary"));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(vin);
  } catch (const std::exception& e) {
    throw InputError(vocab_path + ": malformed JSON: " + e.what());
  }
  if (!j.is_object() || j.empty()) throw InputError(vocab_path + ": expected a non-empty JSON object of token -> id");
  int64_t max_id = -1;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it.value().is_number_integer()) throw InputError(vocab_path + ": id of token '" + it.key() + "' is not an integer");
    const int64_t id = it.value().get<int64_t>();
    if (id < 0 || id >= (int64_t(1) << 24))
      throw InputError(vocab_path + ": id " + std::to_string(id) + " of token '" + it.key() + "' out of range");
    vocab.emplace(it.key(), int32_t(id));
    max_id = std::max(max_id, id);
  }
  id_to_token.assign(size_t(max_id + 1), std::string());
  for (const auto& [tok, id] : vocab) id_to_token[size_t(id)] = tok;
  for (const char* special : {kStartOfText, kEndOfText})
    if (!vocab.count(special)) throw InputError(vocab_path + ": no '" + std::string(special) + "' token");
  bos = vocab.at(kStartOfText);
  eos = vocab.at(kEndOfText);

  byte_encoder = bytes_to_unicode();
  for (uint32_t b = 0; b < 256; ++b) {
    std::string sym;
    append_utf8(sym, byte_encoder[b]);
    byte_decoder[byte_encoder[b]] = uint8_t(b);
    const auto plain = vocab.find(sym), end = vocab.find(sym + "</w>");
    if (plain == vocab.end() || end == vocab.end())
      throw InputError(vocab_path + ": byte symbol '" + sym + "' (byte " + std::to_string(b) + ") missing, with or without </w>");
    byte_id[b] = plain->second;
    byte_end_id[b] = end->second;
  }

  std::ifstream min(merges_path, std::ios::binary);
  if (!min) throw InputError(with_errno(merges_path + ": cannot open BPE merges"));
  std::string line;
  size_t n = 0;
  int32_t rank = 0;
  while (std::getline(min, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (n == 1 && line.rfind("#version", 0) == 0) continue;
    if (line.empty()) continue;
    const size_t sp = line.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 >= line.size() || line.find(' ', sp + 1) != std::string::npos)
      throw InputError(merges_path + ":" + std::to_string(n) + ": expected two symbols separated by one space, got '" + line + "'");
    const std::string a = line.substr(0, sp), b = line.substr(sp + 1);
    const auto ia = vocab.find(a), ib = vocab.find(b), im = vocab.find(a + b);
    if (ia == vocab.end() || ib == vocab.end() || im == vocab.end())
      throw InputError(merges_path + ":" + std::to_string(n) + ": merge '" + line + "' uses or makes a symbol not in " +
                       vocab_path);
    // A later duplicate overrides an earlier one, as in the reference's dict(zip(merges, ranks)).
    merges[pair_key(ia->second, ib->second)] = Merge{rank++, im->second};
  }
  if (merges.empty()) throw InputError(merges_path + ": no merges");
}

std::vector<int32_t> ClipTokenizer::Impl::bpe(const std::string& piece) const {
  if (piece == kStartOfText) return {bos};
  if (piece == kEndOfText) return {eos};
  std::vector<int32_t> syms(piece.size());
  for (size_t i = 0; i < piece.size(); ++i) {
    const auto b = static_cast<unsigned char>(piece[i]);
    syms[i] = i + 1 == piece.size() ? byte_end_id[b] : byte_id[b];
  }
  // Repeatedly merge the adjacent pair with the lowest rank, every occurrence left to right
  // (Sennrich et al., "Neural machine translation of rare words with subword units", 2016).
  std::vector<int32_t> next;
  while (syms.size() > 1) {
    int32_t best_rank = INT32_MAX;
    uint64_t best = 0;
    int32_t merged = 0;
    for (size_t i = 0; i + 1 < syms.size(); ++i) {
      const auto it = merges.find(pair_key(syms[i], syms[i + 1]));
      if (it != merges.end() && it->second.rank < best_rank) {
        best_rank = it->second.rank;
        best = it->first;
        merged = it->second.merged;
      }
    }
    if (best_rank == INT32_MAX) break;
    const int32_t first = int32_t(best >> 32), second = int32_t(uint32_t(best));
    next.clear();
    for (size_t i = 0; i < syms.size();) {
      if (i + 1 < syms.size() && syms[i] == first && syms[i + 1] == second) {
        next.push_back(merged);
        i += 2;
      } else {
        next.push_back(syms[i++]);
      }
    }
    syms.swap(next);
  }
  return syms;
}

void ClipTokenizer::Impl::append_ids(const std::string& text, std::vector<int32_t>& out) const {
  for (const std::string& piece : ClipTokenizer::pre_tokenize(ClipTokenizer::normalize(text))) {
    {
      std::shared_lock<std::shared_mutex> lock(cache_mutex);
      const auto it = cache.find(piece);
      if (it != cache.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        continue;
      }
    }
    std::vector<int32_t> ids = bpe(piece);
    out.insert(out.end(), ids.begin(), ids.end());
    std::unique_lock<std::shared_mutex> lock(cache_mutex);
    if (cache.size() >= kMaxCached) cache.clear();
    cache.emplace(piece, std::move(ids));
  }
}

ClipTokenizer::ClipTokenizer(const std::string& dir) : ClipTokenizer(dir + "/vocab.json", dir + "/merges.txt") {}

ClipTokenizer::ClipTokenizer(const std::string& vocab_json_path, const std::string& merges_txt_path)
    : impl_(std::make_shared<Impl>()) {
  impl_->load(vocab_json_path, merges_txt_path);
}

std::string ClipTokenizer::normalize(const std::string& text) {
  // BERT-style clean-up and lower-casing as HF's slow CLIPTokenizer does without ftfy: drop
  // control characters, split on white space and around CJK ideographs, lower-case each word
  // (str.lower(), including its two context rules: İ -> i + U+0307 and final sigma), join by spaces.
  std::vector<std::vector<uint32_t>> words(1);
  for (uint32_t cp : decode_utf8(text)) {
    const char cls = char_class(cp);
    if (cls == 'R') continue;
    if (cls == 'S' || is_cjk_ideograph(cp)) {
      if (!words.back().empty()) words.emplace_back();
      if (cls == 'S') continue;
      words.back().push_back(cp);
      words.emplace_back();
      continue;
    }
    words.back().push_back(cp);
  }
  std::string out;
  for (const auto& w : words) {
    if (w.empty()) continue;
    if (!out.empty()) out += ' ';
    for (size_t i = 0; i < w.size(); ++i) {
      const uint32_t cp = w[i];
      if (cp == 0x130) {
        append_utf8(out, 'i');
        append_utf8(out, 0x307);
      } else if (cp == 0x3A3) {
        const bool after_letter = i > 0 && char_class(w[i - 1]) == 'L';
        const bool before_letter = i + 1 < w.size() && char_class(w[i + 1]) == 'L';
        append_utf8(out, after_letter && !before_letter ? 0x3C2 : 0x3C3);
      } else {
        append_utf8(out, simple_lower(cp));
      }
    }
  }
  return out;
}

std::vector<std::string> ClipTokenizer::pre_tokenize(const std::string& normalized) {
  const std::vector<uint32_t> cps = decode_utf8(normalized);
  std::vector<std::string> pieces;
  const size_t n = cps.size();
  size_t i = 0;
  while (i < n) {
    const uint32_t cp = cps[i];
    const char cls = char_class(cp);
    if (cls == 'S') {
      ++i;
      continue;
    }
    size_t j = i + 1;
    if (starts_with_at(cps, i, kStartOfText)) {
      j = i + std::char_traits<char>::length(kStartOfText);
    } else if (starts_with_at(cps, i, kEndOfText)) {
      j = i + std::char_traits<char>::length(kEndOfText);
    } else if (cp == '\'' && (starts_with_at(cps, i, "'s") || starts_with_at(cps, i, "'t") ||
                              starts_with_at(cps, i, "'m") || starts_with_at(cps, i, "'d"))) {
      j = i + 2;
    } else if (cp == '\'' && (starts_with_at(cps, i, "'re") || starts_with_at(cps, i, "'ve") ||
                              starts_with_at(cps, i, "'ll"))) {
      j = i + 3;
    } else if (cls == 'L') {
      while (j < n && char_class(cps[j]) == 'L') ++j;
    } else if (cls == 'N') {
      // [\p{N}]: one digit per piece.
    } else {
      while (j < n) {
        const char c = char_class(cps[j]);
        if (c == 'S' || c == 'L' || c == 'N') break;
        ++j;
      }
    }
    std::string piece;
    for (size_t k = i; k < j; ++k) append_utf8(piece, cps[k]);
    pieces.push_back(std::move(piece));
    i = j;
  }
  return pieces;
}

std::vector<int32_t> ClipTokenizer::bpe_ids(const std::string& text) const {
  std::vector<int32_t> ids;
  impl_->append_ids(text, ids);
  return ids;
}

std::vector<std::string> ClipTokenizer::bpe_tokens(const std::string& text) const {
  std::vector<std::string> out;
  for (int32_t id : bpe_ids(text)) out.push_back(impl_->id_to_token[size_t(id)]);
  return out;
}

std::vector<int64_t> ClipTokenizer::encode(const std::string& text, int64_t context_length) const {
  if (context_length < 2) throw InputError("CLIP tokenizer: context length must be >= 2, got " + std::to_string(context_length));
  const std::vector<int32_t> ids = bpe_ids(text);
  std::vector<int64_t> out(size_t(context_length), impl_->eos);
  out[0] = impl_->bos;
  // Truncation keeps bos and eos: at most context_length - 2 BPE ids.
  const size_t keep = std::min(ids.size(), size_t(context_length - 2));
  for (size_t k = 0; k < keep; ++k) out[k + 1] = ids[k];
  return out;
}

std::vector<int64_t> ClipTokenizer::encode_batch(const std::vector<std::string>& texts, int64_t context_length) const {
  std::vector<int64_t> out;
  out.reserve(texts.size() * size_t(std::max<int64_t>(context_length, 0)));
  for (const auto& t : texts) {
    const auto row = encode(t, context_length);
    out.insert(out.end(), row.begin(), row.end());
  }
  return out;
}

std::string ClipTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special) const {
  std::string bytes;
  for (int64_t id : ids) {
    if (id < 0 || size_t(id) >= impl_->id_to_token.size())
      throw InputError("CLIP tokenizer: id " + std::to_string(id) + " not in the vocabulary");
    if (skip_special && (id == impl_->bos || id == impl_->eos)) continue;
    std::string token = impl_->id_to_token[size_t(id)];
    const bool word_end = token.size() >= 4 && token.compare(token.size() - 4, 4, "</w>") == 0;
    if (word_end) token.resize(token.size() - 4);
    for (uint32_t cp : decode_utf8(token)) {
      const auto it = impl_->byte_decoder.find(cp);
      if (it != impl_->byte_decoder.end()) bytes += char(it->second);
      else append_utf8(bytes, cp);
    }
    if (word_end) bytes += ' ';
  }
  while (!bytes.empty() && bytes.back() == ' ') bytes.pop_back();
  return bytes;
}

int64_t ClipTokenizer::bos_id() const { return impl_->bos; }
int64_t ClipTokenizer::eos_id() const { return impl_->eos; }
size_t ClipTokenizer::vocab_size() const { return impl_->vocab.size(); }
size_t ClipTokenizer::num_merges() const { return impl_->merges.size(); }

size_t ClipTokenizer::cached_pieces() const {
  std::shared_lock<std::shared_mutex> lock(impl_->cache_mutex);
  return impl_->cache.size();
}

void ClipTokenizer::clear_cache() const {
  std::unique_lock<std::shared_mutex> lock(impl_->cache_mutex);
  impl_->cache.clear();
}

}  // namespace synth
