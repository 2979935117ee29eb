module github.com/visionserve/visionserve

go 1.26.8
