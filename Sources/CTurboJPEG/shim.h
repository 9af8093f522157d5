// libjpeg-turbo's TurboJPEG API (Debian/Ubuntu: libturbojpeg0-dev; Homebrew: jpeg-turbo).
#include <turbojpeg.h>
